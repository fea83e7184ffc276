import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type DesiredState, emptyDesiredState, parseDesiredState, SCHEMA_VERSION } from "../agent/desired-state.js";
import { createFirewall, XAPI_EBTABLES_LOCK } from "../firewall/index.js";
import type { Firewall } from "../firewall/model.js";
import type { HypervisorBackend } from "../hypervisor/backend.js";
import type { Logger } from "../log.js";
import type { AgentConfig } from "./config.js";
import { StateStore } from "./state-store.js";

export interface AgentParts {
  config: AgentConfig;
  logger: Logger;
  backend: HypervisorBackend;
  firewall: Firewall;
  store: StateStore<DesiredState>;
}

/** Builds the hypervisor backend, firewall and state store the config names. */
export async function buildAgentParts(config: AgentConfig, logger: Logger): Promise<AgentParts> {
  const firewall = await createFirewall({
    backend: config.firewall.backend,
    netns: config.netns,
    // In dom0, batches hold the lock xenopsd's setup-vif-rules holds while it rewrites FORWARD.
    ...(config.hypervisor.kind === "xenserver" ? { lockFile: XAPI_EBTABLES_LOCK } : {}),
    logger,
  });
  const store = new StateStore<DesiredState>({
    path: join(config.stateDir, "desired-state.json"),
    version: SCHEMA_VERSION,
    validate: parseDesiredState,
    empty: emptyDesiredState,
    logger: logger.child({ component: "state" }),
  });
  return { config, logger, backend: await loadBackend(config, logger), firewall, store };
}

/** Only the configured backend is loaded: each costs 15–30 MB of RSS (libvirt addon, xen-api). */
async function loadBackend(config: AgentConfig, logger: Logger): Promise<HypervisorBackend> {
  const hypervisor = config.hypervisor;
  if (hypervisor.kind === "kvm") {
    const { kvmBackend } = await import("../hypervisor/kvm/backend.js");
    return kvmBackend({
      uri: hypervisor.uri,
      domainType: hypervisor.domainType,
      uplink: config.network.uplink,
      mtu: config.network.mtu,
      netns: config.netns,
      logger,
    });
  }
  const { xenServerBackend } = await import("../hypervisor/xenserver/backend.js");
  const xapi = hypervisor.xapi;
  return xenServerBackend({
    xapi: {
      url: xapi.url,
      auth: { user: xapi.username, password: readFileSync(xapi.passwordFile, "utf8").trim() },
      allowSelfSigned: xapi.allowSelfSigned,
    },
    uplink: config.network.uplink,
    netns: config.netns,
    logger,
  });
}

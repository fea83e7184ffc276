import { hostView } from "../agent/host-view.js";
import type { CheckResult } from "../diag/check.js";
import type { ApplyResult } from "../firewall/model.js";
import type { AgentConfig } from "./config.js";
import { hypervisorProbe } from "./diagnose.js";
import type { AgentParts } from "./parts.js";
import { lockHolder } from "./state-lock.js";

/** What `v6agent run --check` found: what a start of the agent would change on this host now. */
export interface HostCheck {
  configPath: string;
  hostId: string;
  hypervisor: CheckResult;
  firewall: { backend: string; changed: boolean; addedPorts: string[]; updatedPorts: string[]; removedPorts: string[] };
  /** The desired state file as found: loaded, missing (a new host), recovered from `.prev`, corrupt. */
  state: string;
  stateProblem?: string;
  /** A daemon running on this state directory now (its pid). */
  daemon?: { pid: number };
  /** One line per change a start would make; empty when the host is as the agent would leave it. */
  changes: string[];
  /** Why the plan could not be computed (the hypervisor unreachable, the state file unreadable). */
  problems: string[];
  inSync: boolean;
}

/**
 * `v6agent run --check`: the configuration (already loaded by the caller), then the plan a start
 * would apply, computed against the live host, with nothing written anywhere. Unlike `run`, it
 * takes no lock (and takes over no stale one), opens no journal, reads the state file read-only
 * (a damaged one stays where it is, temp files stay), provisions no bridge, writes no sysctl, and
 * asks the firewall for a dry run only. It connects to the hypervisor to list VMs (read-only),
 * and not to the management server.
 */
export async function checkHost(configPath: string, config: AgentConfig, parts: AgentParts): Promise<HostCheck> {
  const [{ hypervisorCheck }, { bridgeChecks }] = await Promise.all([import("../diag/hypervisor.js"), import("../diag/bridges.js")]);
  const problems: string[] = [];
  const changes: string[] = [];
  const desired = await parts.store.load({ readOnly: true });
  const stateProblem = parts.store.unusable();
  const load = parts.store.lastLoad;
  if (stateProblem !== undefined) {
    problems.push(`${stateProblem}: a start would leave every live rule as it is and refuse changes until the server's state.sync`);
  } else if (load?.status === "recovered") {
    changes.push(`the state file is damaged (${load.reason}): a start keeps it aside and uses its previous copy (saved ${load.savedAt})`);
  }
  const probe = await hypervisorCheck(hypervisorProbe(config.hypervisor, parts.backend.hypervisor, true));
  let firewall: ApplyResult = { changed: false, addedPorts: [], updatedPorts: [], removedPorts: [] };
  try {
    if (probe.check.status !== "ok") problems.push(`${probe.check.message} (${probe.check.fix})`);
    else if (stateProblem === undefined) {
      const view = hostView(desired, probe.vms, parts.backend.guestPortPatterns);
      const networks = desired.networks.map((network) => ({ ...network, prefix: network.network.cidr }));
      for (const bridge of await bridgeChecks(networks, config.netns)) {
        if (bridge.status !== "ok") changes.push(`network: ${bridge.message} (a start re-provisions it)`);
      }
      firewall = await parts.firewall.reconcile(view.plan, { dryRun: true });
      changes.push(...firewallChanges(firewall, parts.firewall.backend));
      for (const other of await parts.firewall.otherBackendRules()) changes.push(`remove the other backend's rules: ${other}`);
    }
  } finally {
    await probe.close();
  }
  const daemon = await lockHolder(config.stateDir);
  const check: HostCheck = {
    configPath,
    hostId: config.hostId,
    hypervisor: probe.check,
    firewall: { backend: parts.firewall.backend, ...firewall },
    state: load?.status ?? "missing",
    changes,
    problems,
    inSync: problems.length === 0 && changes.length === 0,
  };
  if (stateProblem !== undefined) check.stateProblem = stateProblem;
  if (daemon !== undefined) check.daemon = daemon;
  return check;
}

function firewallChanges(result: ApplyResult, backend: string): string[] {
  const lines = [
    ...result.addedPorts.map((port) => `firewall: install the rules of port ${port}`),
    ...result.updatedPorts.map((port) => `firewall: rewrite the rules of port ${port}`),
    ...result.removedPorts.map((port) => `firewall: remove the stale rules of port ${port}`),
  ];
  // Changed without a port to name: the shared rules (a first start, or edited by hand).
  if (result.changed && lines.length === 0) lines.push(`firewall: write the agent's shared ${backend} rules`);
  return lines;
}

/** The human form: what would change, or that nothing would. */
export function formatHostCheck(check: HostCheck): string {
  const lines = [
    `v6agent run --check: ${check.configPath} is valid (host ${check.hostId}, firewall ${check.firewall.backend})`,
    `hypervisor: ${check.hypervisor.message}`,
    `state file: ${check.state}${check.daemon === undefined ? "" : `; a daemon runs on this state directory (pid ${check.daemon.pid})`}`,
  ];
  for (const problem of check.problems) lines.push(`cannot plan: ${problem}`);
  if (check.changes.length > 0) lines.push("a start would change:", ...check.changes.map((change) => `  ${change}`));
  else if (check.problems.length === 0) lines.push("nothing would change: the host is as the agent would leave it");
  return lines.join("\n");
}

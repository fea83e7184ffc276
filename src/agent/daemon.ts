import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import { hostname } from "node:os";
import { join } from "node:path";
import { AgentChannel, ResultStore } from "../channel/index.js";
import type { DiagReport } from "../diag/check.js";
import { createFirewall, XAPI_EBTABLES_LOCK } from "../firewall/index.js";
import type { Firewall } from "../firewall/model.js";
import type { Hypervisor } from "../hypervisor/hypervisor.js";
import { createLogger, type Logger } from "../log.js";
import { VERSION } from "../version.js";
import { Agent } from "./agent.js";
import { type AgentConfig, loadAgentConfig } from "./config.js";
import { type DesiredState, emptyDesiredState, parseDesiredState, SCHEMA_VERSION } from "./desired-state.js";
import { commandHandler } from "./dispatch.js";
import { HostBridgeProvisioner } from "./kvm-networks.js";
import { type MetricsSink, noMetrics } from "./metrics-sink.js";
import type { NetworkProvisioner } from "./network-provisioner.js";
import { StateStore } from "./state-store.js";

/**
 * After an orderly stop the process must end even if a library still holds a handle (seen: the
 * XenServer backend's HTTP keep-alive / event.from long poll kept `v6agent run` alive after
 * SIGTERM). The timer is unref'd: it only fires when something else keeps the loop running,
 * and leaves time for the last log lines to be written.
 */
function exitSoon(code: number): void {
  setTimeout(() => process.exit(code), 1_000).unref();
}

/** How long SIGTERM waits for in-flight commands before aborting them. */
const STOP_GRACE_MS = 20_000;

export interface AgentParts {
  config: AgentConfig;
  logger: Logger;
  hypervisor: Hypervisor;
  firewall: Firewall;
  networks: NetworkProvisioner;
  store: StateStore<DesiredState>;
}

/** Builds the hypervisor, firewall, network provisioner and state store the config names. */
export async function buildAgentParts(config: AgentConfig, logger: Logger): Promise<AgentParts> {
  const netnsOption = config.netns === undefined ? {} : { netns: config.netns };
  const firewall = await createFirewall({
    backend: config.firewall.backend,
    ...netnsOption,
    // In dom0, batches hold the lock xenopsd's setup-vif-rules holds while it rewrites FORWARD.
    ...(config.hypervisor.kind === "xenserver" ? { lockFile: XAPI_EBTABLES_LOCK } : {}),
    logger,
  });
  let hypervisor: Hypervisor;
  let networks: NetworkProvisioner;
  // Only the configured backend is loaded: each costs 15–30 MB of RSS (libvirt addon, xen-api).
  if (config.hypervisor.kind === "kvm") {
    const { KvmHypervisor } = await import("../hypervisor/kvm/kvm-hypervisor.js");
    hypervisor = new KvmHypervisor({ uri: config.hypervisor.uri, domainType: config.hypervisor.domainType, logger });
    networks = new HostBridgeProvisioner({
      ...(config.network.uplink === undefined ? {} : { uplink: config.network.uplink }),
      ...(config.network.mtu === undefined ? {} : { mtu: config.network.mtu }),
      ...netnsOption,
    });
  } else {
    const xapi = config.hypervisor.xapi;
    const { XenServerHypervisor } = await import("../hypervisor/xenserver/index.js");
    const { XapiNetworkProvisioner } = await import("./xenserver-networks.js");
    const xen = new XenServerHypervisor({
      url: xapi.url,
      auth: { user: xapi.username, password: readFileSync(xapi.passwordFile, "utf8").trim() },
      allowSelfSigned: xapi.allowSelfSigned,
      logger,
    });
    hypervisor = xen;
    networks = new XapiNetworkProvisioner(xen, {
      ...(config.network.uplink === undefined ? {} : { uplink: config.network.uplink }),
      ...netnsOption,
      logger,
    });
  }
  const store = new StateStore<DesiredState>({
    path: join(config.stateDir, "desired-state.json"),
    version: SCHEMA_VERSION,
    validate: parseDesiredState,
    empty: emptyDesiredState,
    logger: logger.child({ component: "state" }),
  });
  return { config, logger, hypervisor, firewall, networks, store };
}

/**
 * `host.diagnose` and `v6agent diag`: host checks plus desired-versus-live for this agent. The
 * daemon passes its connected hypervisor; `v6agent diag` passes an unconnected one with
 * `connect: true` (the check then logs in, or reports why it cannot).
 */
export async function diagnoseWith(
  parts: Pick<AgentParts, "config" | "firewall" | "networks">,
  desired: () => DesiredState,
  hypervisor?: { backend: Hypervisor; connect: boolean },
): Promise<DiagReport> {
  // Loaded on the first host.diagnose: the daemon otherwise never needs the checks in memory.
  const [{ agentChecks }, { diagnose }, { hypervisorProbe }] = await Promise.all([
    import("../diag/agent-checks.js"),
    import("../diag/diagnose.js"),
    import("../diag/hypervisor.js"),
  ]);
  const config = parts.config;
  const netnsOption = config.netns === undefined ? {} : { netns: config.netns };
  return diagnose({
    backend: parts.firewall.backend,
    ...netnsOption,
    management: config.management.servers.map((url) => ({
      url,
      ...(config.management.caFile === undefined ? {} : { caFile: config.management.caFile }),
      ...(config.management.certFile === undefined ? {} : { certFile: config.management.certFile }),
      ...(config.management.keyFile === undefined ? {} : { keyFile: config.management.keyFile }),
    })),
    agentChecks: () =>
      agentChecks({
        desired: desired(),
        firewall: parts.firewall,
        ...netnsOption,
        ...(parts.networks.guestPortPatterns === undefined ? {} : { guestPortPatterns: parts.networks.guestPortPatterns }),
        ...(hypervisor === undefined ? {} : { hypervisor: hypervisorProbe(config.hypervisor, hypervisor.backend, hypervisor.connect) }),
      }),
  });
}

/**
 * `v6agent run`: converge the host before saying hello, then serve the management server's
 * commands, keep converging on hypervisor events and a slow timer, and report every VIF change.
 * SIGTERM finishes in-flight commands and exits; SIGHUP re-reads the config (log level now;
 * anything else is logged as needing a restart).
 */
export async function runDaemon(configPath: string): Promise<number> {
  const config = await loadAgentConfig(configPath);
  const logger = createLogger(config.logLevel);
  // Before anything touches the host: an unusable journal ends the start with its path and reason.
  const journal = new ResultStore({ path: join(config.stateDir, "channel-journal.json"), logger: logger.child({ component: "channel" }) });
  const parts = await buildAgentParts(config, logger);
  const prometheus = config.metrics.listen === undefined ? undefined : new (await import("./metrics.js")).AgentMetrics();
  const metrics: MetricsSink = prometheus ?? noMetrics;
  let channel: AgentChannel | undefined;
  const agent = new Agent({
    hypervisor: parts.hypervisor,
    firewall: parts.firewall,
    networks: parts.networks,
    store: parts.store,
    logger,
    report: (report) => {
      channel?.report(report).catch((error: unknown) => logger.warn({ err: error, mac: report.mac }, "VIF report not delivered"));
    },
  });

  const summary = await agent.start();
  metrics.setProtectedPorts(summary.protectedPorts);
  logger.info({ ports: summary.protectedPorts, vms: summary.vms, changed: summary.firewall.changed }, "converged before hello");

  const management = config.management;
  const token = management.token ?? (management.tokenFile === undefined ? undefined : readFileSync(management.tokenFile, "utf8").trim());
  const handler = commandHandler(agent, () => diagnoseWith(parts, () => agent.state, { backend: parts.hypervisor, connect: false }));
  const facts = await parts.hypervisor.facts();
  channel = new AgentChannel({
    servers: management.servers,
    ...(management.caFile === undefined
      ? {}
      : {
          tls: {
            ca: readFileSync(management.caFile),
            ...(management.certFile === undefined ? {} : { cert: readFileSync(management.certFile) }),
            ...(management.keyFile === undefined ? {} : { key: readFileSync(management.keyFile) }),
          },
        }),
    ...(token === undefined ? {} : { token }),
    allowInsecure: management.insecure,
    journal,
    heartbeatIntervalMs: management.heartbeatSeconds * 1000,
    liveness: { silenceTimeoutMs: management.timeoutSeconds * 1000 },
    logger,
    hello: async () => {
      const inventory = agent.inventory();
      return {
        hostId: config.hostId,
        hostname: hostname(),
        hypervisor: parts.hypervisor.kind,
        versions: { agent: VERSION, hypervisor: facts.hypervisorVersion, library: facts.libraryVersion, firewall: parts.firewall.backend },
        capabilities: ["network.ensure", "nic.plug", "vm.deploy", "state.sync", "host.diagnose", `firewall:${parts.firewall.backend}`],
        inventory: {
          networks: inventory.networks.map((network) => ({
            networkId: network.networkId,
            prefix: network.network.cidr,
            bridge: network.bridge,
          })),
          vifs: inventory.vifs,
        },
      };
    },
    heartbeat: async () => agent.heartbeat(),
    handle: (async (method, params, context) => {
      const started = process.hrtime.bigint();
      try {
        const result = await handler(method, params, context);
        metrics.observeCommand(method, "ok", Number(process.hrtime.bigint() - started) / 1e9);
        return result;
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        metrics.observeCommand(method, typeof code === "string" ? code : "internal", Number(process.hrtime.bigint() - started) / 1e9);
        throw error;
      }
    }) as typeof handler,
  });
  channel.on("connected", () => metrics.setConnected(true));
  channel.on("disconnected", () => metrics.setConnected(false));
  channel.start();

  let metricsServer: Server | undefined;
  if (prometheus !== undefined && config.metrics.listen !== undefined) {
    metricsServer = await prometheus.listen(config.metrics.listen.host, config.metrics.listen.port);
    logger.info({ listen: config.metrics.listen }, "metrics served");
  }

  const periodic = setInterval(() => {
    agent
      .reconcile()
      .then(async (result) => {
        metrics.setProtectedPorts(result.protectedPorts);
        metrics.setDrops?.(await parts.firewall.counters());
      })
      .catch((error: unknown) => logger.error({ err: error }, "periodic reconcile failed"));
  }, config.reconcileSeconds * 1000);

  return new Promise<number>((resolve) => {
    let stopping = false;
    process.on("SIGHUP", () => {
      loadAgentConfig(configPath).then(
        (next) => {
          logger.level = next.logLevel;
          const changed = (Object.keys(next) as (keyof AgentConfig)[]).filter(
            (key) => key !== "logLevel" && JSON.stringify(next[key]) !== JSON.stringify(config[key]),
          );
          logger.info(
            { logLevel: next.logLevel, needsRestart: changed },
            changed.length > 0 ? "config reloaded; restart to apply the other changes" : "config reloaded",
          );
        },
        (error: unknown) => logger.error({ err: error }, "config reload failed; keeping the running config"),
      );
    });
    process.on("SIGTERM", () => {
      if (stopping) return;
      stopping = true;
      logger.info("stopping: finishing in-flight commands");
      clearInterval(periodic);
      (channel as AgentChannel)
        .stop({ graceMs: STOP_GRACE_MS })
        .then(() => agent.stop())
        .then(() => new Promise<void>((done) => (metricsServer === undefined ? done() : metricsServer.close(() => done()))))
        .then(
          () => {
            logger.info("stopped");
            exitSoon(0);
            resolve(0);
          },
          (error: unknown) => {
            logger.error({ err: error }, "stop failed");
            exitSoon(1);
            resolve(1);
          },
        );
    });
  });
}

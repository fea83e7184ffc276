import type { Server } from "node:http";
import { hostname } from "node:os";
import { join } from "node:path";
import { Agent } from "../agent/agent.js";
import { commandHandler } from "../agent/dispatch.js";
import { AgentChannel, ResultStore } from "../channel/index.js";
import { createLogger } from "../log.js";
import { VERSION } from "../version.js";
import { channelSecurity } from "./channel-security.js";
import { type AgentConfig, loadAgentConfig } from "./config.js";
import { DaemonStatus } from "./daemon-status.js";
import { DhcpIdentityEvidence } from "./dhcp-identity.js";
import { diagnoseWith, hypervisorProbe } from "./diagnose.js";
import { failpoint } from "./failpoint.js";
import { type MetricsSink, noMetrics } from "./metrics-sink.js";
import { buildAgentParts } from "./parts.js";
import { lockStateDir } from "./state-lock.js";
import { serveStatus } from "./status-socket.js";

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

/**
 * `v6agent run`: converge the host before saying hello, then serve the management server's
 * commands, keep converging on hypervisor events and a slow timer, and report every VIF change.
 * SIGTERM finishes in-flight commands and exits; SIGHUP re-reads the config (log level now;
 * anything else is logged as needing a restart). `loaded`: the configuration the caller already read
 * from `configPath` (the CLI does, to exit with its own code when it is invalid).
 */
export async function runDaemon(configPath: string, loaded?: AgentConfig): Promise<number> {
  const config = loaded ?? (await loadAgentConfig(configPath));
  const logger = createLogger(config.logLevel);
  const unlock = await lockStateDir(config.stateDir);
  // Before anything touches the host (and only once the state directory is ours): an unusable
  // journal ends the start with its path and reason.
  const journal = new ResultStore({ path: join(config.stateDir, "channel-journal.json"), logger: logger.child({ component: "channel" }) });
  const parts = await buildAgentParts(config, logger);
  // Ports and drops are read from the firewall when scraped or asked (src/daemon/port-coverage.ts).
  const vifs = () => agent.inventory().vifs;
  const counters = () => parts.firewall.counters();
  const prometheus =
    config.metrics.listen === undefined ? undefined : new (await import("./metrics.js")).AgentMetrics({ vifs, counters }, logger);
  const metrics: MetricsSink = prometheus ?? noMetrics;
  let channel: AgentChannel | undefined;
  const identities = new DhcpIdentityEvidence({ stateDir: config.stateDir, netns: config.netns, logger, metrics });
  await identities.load();
  const status: DaemonStatus = new DaemonStatus({
    hostId: config.hostId,
    configPath,
    hypervisor: hypervisorProbe(config.hypervisor, parts.backend.hypervisor, false).target,
    firewall: parts.firewall.backend,
    servers: config.management.servers,
    networks: () =>
      agent.state.networks.map((network) => ({
        networkId: network.networkId,
        prefix: network.network.cidr,
        bridge: network.bridge,
        vlan: network.vlan,
      })),
    vifs,
    stateProblem: () => agent.stateProblem,
    counters,
  });
  const agent: Agent = new Agent({
    backend: parts.backend,
    firewall: parts.firewall,
    failpoint,
    store: parts.store,
    logger,
    report: (report) => {
      channel?.report(report).catch((error: unknown) => logger.warn({ err: error, mac: report.mac }, "VIF report not delivered"));
    },
    identity: identities.lookup,
    reconciled: status.reconciled,
  });
  // Up while the host converges, so `v6agent status` can say so; the daemon runs on without it.
  const statusServer = await serveStatus(config.statusSocket, () => status.report(), logger).catch((error: unknown) => {
    logger.error({ err: error, path: config.statusSocket }, "v6agent status will not answer: the status socket could not be served");
    return undefined;
  });

  const summary = await agent.start();
  identities.retain(agent.heartbeat().vifs.map((vif) => vif.device));
  identities.start(agent);
  logger.info({ ports: summary.protectedPorts, vms: summary.vms, changed: summary.firewall.changed }, "converged before hello");

  const management = config.management;
  const handler = commandHandler(agent, () =>
    diagnoseWith(
      parts,
      () => agent.state,
      { backend: parts.backend.hypervisor, connect: false },
      () => agent.stateProblem,
      identities.lookup,
    ),
  );
  const facts = await parts.backend.hypervisor.facts();
  channel = new AgentChannel({
    servers: management.servers,
    // The same security loadAgentConfig checked the server URLs against.
    ...channelSecurity(management),
    journal,
    heartbeatIntervalMs: management.heartbeatSeconds * 1000,
    liveness: { silenceTimeoutMs: management.timeoutSeconds * 1000 },
    logger,
    hello: async () => {
      const inventory = agent.inventory();
      return {
        hostId: config.hostId,
        hostname: hostname(),
        hypervisor: parts.backend.hypervisor.kind,
        versions: { agent: VERSION, hypervisor: facts.hypervisorVersion, library: facts.libraryVersion, firewall: parts.firewall.backend },
        stateProblem: agent.stateProblem,
        capabilities: [...parts.backend.capabilities, `firewall:${parts.firewall.backend}`],
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
  status.watch(channel);
  channel.on("connected", () => metrics.setConnected(true));
  channel.on("disconnected", () => metrics.setConnected(false));
  channel.start();
  status.phase = "running";

  let metricsServer: Server | undefined;
  if (prometheus !== undefined && config.metrics.listen !== undefined) {
    metricsServer = await prometheus.listen(config.metrics.listen.host, config.metrics.listen.port);
    logger.info({ listen: config.metrics.listen }, "metrics served");
  }

  const periodic = setInterval(() => {
    agent
      .reconcile()
      .then(() => identities.retain(agent.heartbeat().vifs.map((vif) => vif.device)))
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
      status.phase = "stopping";
      logger.info("stopping: finishing in-flight commands");
      clearInterval(periodic);
      (channel as AgentChannel)
        .stop({ graceMs: STOP_GRACE_MS })
        .then(() => agent.stop())
        .then(() => identities.close())
        .then(() => new Promise<void>((done) => (metricsServer === undefined ? done() : metricsServer.close(() => done()))))
        .then(() => statusServer?.close())
        .then(() => unlock())
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

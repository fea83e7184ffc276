import type { ReconcileRun } from "../agent/reconcile-run.js";
import type { VifReport } from "../agent/vif-report.js";
import type { AgentChannel, ChannelState } from "../channel/index.js";
import type { FirewallBackendName, PortCounters } from "../firewall/model.js";
import { VERSION } from "../version.js";
import { type CoveredPort, type PortDrop, portCoverage } from "./port-coverage.js";

/** What `v6agent status` prints: the running daemon's own account of itself (one JSON document). */
export interface StatusReport {
  version: string;
  pid: number;
  startedAt: string;
  /** `starting` until the host is converged and the channel runs; `stopping` after SIGTERM. */
  phase: "starting" | "running" | "stopping";
  hostId: string;
  configPath: string;
  hypervisor: string;
  firewall: FirewallBackendName;
  management: ManagementStatus;
  /** Why the desired state is unreadable: the agent leaves the live rules alone until state.sync. */
  stateProblem?: string;
  networks: { networkId: string; prefix: string; bridge: string; vlan?: number }[];
  ports: { protected: CoveredPort[]; unprotected: CoveredPort[] };
  drops: PortDrop[];
  /** The firewall could not be read for this report (ports and drops are then empty). */
  firewallError?: string;
  reconcile: { last?: ReconcileRunStatus; runs: number; failures: number };
}

export interface ManagementStatus {
  state: ChannelState | "not started";
  connected: boolean;
  servers: string[];
  /** The server of the current connection, or of the last attempt. */
  server?: string;
  /** Since when the state is what it is (connected since, or trying since the last disconnect). */
  since?: string;
  lastHello?: { at: string; server: string; resumed: boolean };
  /** Why the last connection ended or was refused ("server refused the token: HTTP 401 Unauthorized"). */
  lastError?: { at: string; server: string; reason: string };
  /** Results waiting for a connection. */
  outbox: number;
}

export type ReconcileRunStatus = Omit<ReconcileRun, "summary"> & {
  changed?: boolean;
  vms?: number;
  ports?: number;
  added?: string[];
  updated?: string[];
  removed?: string[];
};

/** What the report is composed from when asked: the agent's view, the firewall's counters, the channel. */
export interface StatusSources {
  hostId: string;
  configPath: string;
  hypervisor: string;
  firewall: FirewallBackendName;
  servers: string[];
  networks: () => StatusReport["networks"];
  vifs: () => readonly VifReport[];
  stateProblem: () => string | undefined;
  counters: () => Promise<PortCounters[]>;
}

/**
 * The daemon's status: what it recorded as it happened (the channel's hellos and refusals, each
 * full reconcile) plus what it reads when asked (ports judged by the firewall's live counters).
 */
export class DaemonStatus {
  private readonly startedAt = new Date().toISOString();
  private phaseValue: StatusReport["phase"] = "starting";
  private channel: AgentChannel | undefined;
  private management: Omit<ManagementStatus, "state" | "connected" | "servers" | "outbox"> = {};
  private last: ReconcileRunStatus | undefined;
  private runs = 0;
  private failures = 0;

  constructor(private readonly sources: StatusSources) {}

  set phase(phase: StatusReport["phase"]) {
    this.phaseValue = phase;
  }

  /** Follows the channel's connections from now on. */
  watch(channel: AgentChannel): void {
    this.channel = channel;
    channel.on("connected", ({ server, resumed }) => {
      const at = new Date().toISOString();
      this.management = { ...this.management, server, since: at, lastHello: { at, server, resumed } };
    });
    channel.on("disconnected", ({ server, reason }) => {
      const at = new Date().toISOString();
      this.management = { ...this.management, server, since: at, lastError: { at, server, reason } };
    });
  }

  /** Records a full reconcile (the agent's `reconciled` dependency). */
  readonly reconciled = (run: ReconcileRun): void => {
    this.runs += 1;
    if (run.error !== undefined) this.failures += 1;
    const { summary, ...rest } = run;
    this.last =
      summary === undefined
        ? rest
        : {
            ...rest,
            changed: summary.firewall.changed,
            vms: summary.vms,
            ports: summary.protectedPorts,
            added: summary.firewall.addedPorts,
            updated: summary.firewall.updatedPorts,
            removed: summary.firewall.removedPorts,
          };
  };

  async report(): Promise<StatusReport> {
    const sources = this.sources;
    let counters: PortCounters[] = [];
    let firewallError: string | undefined;
    try {
      counters = await sources.counters();
    } catch (error) {
      firewallError = (error as Error).message;
    }
    const coverage = portCoverage(sources.vifs(), counters);
    const channel = this.channel;
    const report: StatusReport = {
      version: VERSION,
      pid: process.pid,
      startedAt: this.startedAt,
      phase: this.phaseValue,
      hostId: sources.hostId,
      configPath: sources.configPath,
      hypervisor: sources.hypervisor,
      firewall: sources.firewall,
      management: {
        state: channel?.state ?? "not started",
        connected: channel?.connected ?? false,
        servers: sources.servers,
        ...this.management,
        outbox: channel?.outboxSize ?? 0,
      },
      networks: sources.networks(),
      ports: { protected: coverage.protected, unprotected: coverage.unprotected },
      drops: coverage.drops,
      reconcile: { last: this.last, runs: this.runs, failures: this.failures },
    };
    const problem = sources.stateProblem();
    if (problem !== undefined) report.stateProblem = problem;
    if (firewallError !== undefined) report.firewallError = firewallError;
    return report;
  }
}

import type { PortCounters } from "../firewall/model.js";

/**
 * What the daemon records for metrics. Prometheus (`AgentMetrics`, prom-client) serves it only
 * when `metrics.listen` is configured; otherwise the daemon records into `noMetrics` and never
 * loads prom-client (~1 MiB of heap and its dependencies on every host that does not scrape).
 */
export interface MetricsSink {
  observeCommand(method: string, outcome: string, seconds: number): void;
  setProtectedPorts(count: number): void;
  setConnected(connected: boolean): void;
  /** Absent when nobody reads drops: the daemon then does not read the firewall's counters. */
  setDrops?(counters: readonly PortCounters[]): void;
  /** VIFs whose guest sends a DUID other than their DUID-LL, and VIFs sending a DUID another VIF sends too. */
  setDuidEvidence?(counts: { mismatched: number; shared: number }): void;
}

export const noMetrics: MetricsSink = {
  observeCommand() {},
  setProtectedPorts() {},
  setConnected() {},
};

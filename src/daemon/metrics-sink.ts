/**
 * What the daemon records for metrics as it happens. Prometheus (`AgentMetrics`, prom-client)
 * serves it only when `metrics.listen` is configured, and reads ports and drops itself at scrape
 * time; otherwise the daemon records into `noMetrics` and never loads prom-client (~1 MiB of
 * heap and its dependencies on every host that does not scrape).
 */
export interface MetricsSink {
  observeCommand(method: string, outcome: string, seconds: number): void;
  setConnected(connected: boolean): void;
  /** VIFs whose guest sends a DUID other than their DUID-LL, and VIFs sending a DUID another VIF sends too. */
  setDuidEvidence?(counts: { mismatched: number; shared: number }): void;
}

export const noMetrics: MetricsSink = {
  observeCommand() {},
  setConnected() {},
};

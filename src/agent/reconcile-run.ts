import type { ReconcileSummary } from "./agent.js";

/** One full reconcile, as the daemon's status reports it: when it started, how long it took, how it ended. */
export interface ReconcileRun {
  /** ISO time it started (after waiting for the commands in flight). */
  at: string;
  seconds: number;
  summary?: ReconcileSummary;
  /** Why it failed. */
  error?: string;
}

/** Runs a reconcile and tells `observe` about it, success or failure. */
export async function observedRun(work: () => Promise<ReconcileSummary>, observe?: (run: ReconcileRun) => void): Promise<ReconcileSummary> {
  const at = new Date().toISOString();
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  try {
    const summary = await work();
    observe?.({ at, seconds: seconds(), summary });
    return summary;
  } catch (error) {
    observe?.({ at, seconds: seconds(), error: error instanceof Error ? error.message : String(error) });
    throw error;
  }
}

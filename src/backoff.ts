/**
 * Reconnect delays: exponential, capped, with full jitter (a random delay between 0 and the
 * exponential step) so a thousand agents that lost the same server do not return in lockstep.
 */
export interface BackoffOptions {
  /** First step, default 500 ms. */
  initialMs: number;
  /** Cap of the exponential step, default 30 s. */
  maxMs: number;
  /** Growth per attempt, default 2. */
  factor: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000, factor: 2 };

/** Delay before reconnect attempt `attempt` (0-based). `random` returns [0, 1). */
export function backoffDelay(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const step = Math.min(options.maxMs, options.initialMs * options.factor ** Math.min(attempt, 64));
  // Never zero: keep at least a tenth of the step so a flapping server is not hammered.
  return Math.round(step * (0.1 + 0.9 * random()));
}

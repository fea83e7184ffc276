import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";

/**
 * V8 settings that trade peak JavaScript speed for a small, steady RSS in the daemon, which runs
 * on every hypervisor host next to the guests. Set at run time, before the daemon's modules load:
 * each flag below is read by V8 whenever it decides, so no launcher has to pass it. On a V8 that
 * ignored one, the daemon would only use more memory, never behave differently.
 *
 * Measured with bench/agent-memory.ts (1,000 ports, XenServer simulator, nft backend):
 *
 * - `--semi-space-growth-factor=1` keeps the young generation at two 1 MiB semi-spaces. V8
 *   doubles them up to 16 MiB each whenever a burst of allocation survives a scavenge (module
 *   loading, parsing `nft` and XAPI answers), and an idle process never gives them back: with 220
 *   ports, 32 MiB of 128 MiB RSS was an empty new space.
 * - `--max-opt=1` stops at the baseline compiler (Sparkplug): no Maglev or TurboFan. The daemon's
 *   JavaScript is short bursts of rendering and parsing between system calls; the optimising
 *   compilers' zones, optimised code and deopt data cost ~7 MiB of settled RSS, while plug latency
 *   and startup did not get slower (bench/agent.ts).
 * - `--heap-growing-percent=20` lets the old generation's limit grow by 20% after each full GC
 *   instead of V8's dynamic factor (up to 4×). A burst of plugs at 1,000 ports then peaks ~20 MiB
 *   lower, at the cost of more frequent, small, mostly concurrent full GCs.
 */
export const DAEMON_V8_FLAGS = ["--semi-space-growth-factor=1", "--max-opt=1", "--heap-growing-percent=20"] as const;

export function tuneV8ForDaemon(): void {
  for (const flag of DAEMON_V8_FLAGS) setFlagsFromString(flag);
}

/** The young generation's current size in bytes (both semi-spaces), for logs and tests. */
export function youngGenerationBytes(): number {
  return getHeapSpaceStatistics().find((space) => space.space_name === "new_space")?.space_size ?? 0;
}

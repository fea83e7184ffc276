import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";

/**
 * Keeps V8's young generation at its initial size (two 1 MiB semi-spaces) for the daemon.
 *
 * Why: V8 doubles the semi-spaces up to 16 MiB each whenever a burst of allocation survives a
 * scavenge (module loading at start, parsing `nft` and XAPI answers), and a process that then
 * idles never gives them back: measured on `v6agent run` with 220 ports, 32 MiB of the 128 MiB
 * RSS was an empty new space (bench/agent.ts; 92 MiB with the semi-spaces kept small). The agent
 * allocates at the pace of management commands and hypervisor events, so the extra scavenges
 * this costs are not measurable in its latencies (bench/channel.ts, bench/agent.ts).
 *
 * How: `--semi-space-growth-factor=1` makes every "grow" keep the current size. It is read each
 * time V8 considers growing, so setting it at run time works (unlike `--max-semi-space-size`,
 * which is fixed when the heap is created and would need every launcher to pass it). On a V8
 * that ignored it the daemon would only use more memory, never behave differently.
 */
export function keepYoungGenerationSmall(): void {
  setFlagsFromString("--semi-space-growth-factor=1");
}

/** The young generation's current size in bytes (both semi-spaces), for logs and tests. */
export function youngGenerationBytes(): number {
  return getHeapSpaceStatistics().find((space) => space.space_name === "new_space")?.space_size ?? 0;
}

import { execFileSync } from "node:child_process";
import { type RunOptions, type RunResult, run } from "../../src/exec.js";
import { uniqueName } from "./names.js";

/**
 * A network namespace owned by one test. Created with a unique name and always deleted:
 * by `destroy()`, by `withNetns`'s finally, and as a last resort when the test process exits.
 * Deleting a namespace deletes every interface inside it (veth peers included).
 */
export class Netns {
  private destroyed = false;

  private constructor(readonly name: string) {}

  static async create(prefix = "v6t"): Promise<Netns> {
    const name = uniqueName(prefix);
    await run("ip", ["netns", "add", name]);
    live.add(name);
    const netns = new Netns(name);
    await netns.exec("ip", ["link", "set", "lo", "up"]);
    return netns;
  }

  /** Runs a command inside the namespace (argument array, no shell). */
  exec(command: string, args: readonly string[], options: Omit<RunOptions, "netns"> = {}): Promise<RunResult> {
    return run(command, args, { ...options, netns: this.name });
  }

  /** `ip -json ...` inside the namespace, parsed. */
  async ipJson<T = unknown>(args: readonly string[]): Promise<T> {
    const { stdout } = await this.exec("ip", ["-json", ...args]);
    return JSON.parse(stdout.trim() === "" ? "[]" : stdout) as T;
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this.name);
    await run("ip", ["netns", "del", this.name], { okExitCodes: [0, 1] });
  }
}

/** Runs `body` with fresh namespaces and deletes them afterwards, whatever happens. */
export async function withNetns<T>(prefixes: readonly string[], body: (...namespaces: Netns[]) => Promise<T>): Promise<T> {
  const namespaces: Netns[] = [];
  try {
    for (const prefix of prefixes) namespaces.push(await Netns.create(prefix));
    return await body(...namespaces);
  } finally {
    await Promise.all(namespaces.map((netns) => netns.destroy()));
  }
}

/**
 * Moves one end of a new veth pair into `a` and the other into `b`. The pair is created in
 * `a` so nothing ever appears in the host's own namespace.
 */
export async function vethBetween(a: Netns, nameA: string, b: Netns, nameB: string): Promise<void> {
  await a.exec("ip", ["link", "add", nameA, "type", "veth", "peer", "name", nameB, "netns", b.name]);
  await a.exec("ip", ["link", "set", nameA, "up"]);
  await b.exec("ip", ["link", "set", nameB, "up"]);
}

/** Namespace names this process created and has not deleted yet. */
const live = new Set<string>();

process.on("exit", () => {
  for (const name of live) {
    try {
      execFileSync("ip", ["netns", "del", name], { stdio: "ignore" });
    } catch {
      // already gone
    }
  }
});

export function liveNamespaces(): readonly string[] {
  return [...live];
}

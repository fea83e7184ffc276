import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { type RunOptions, type RunResult, run } from "../exec.js";
import { uniqueName } from "./names.js";

/**
 * A network namespace owned by one lab or test. Created with a unique name and always deleted:
 * by `destroy()`, by `withNetns`'s finally, and as a last resort when the process exits.
 * Deleting a namespace deletes every interface inside it (veth peers included).
 *
 * Each namespace gets its own `/etc/netns/<name>/resolv.conf`, which `ip netns exec` binds over
 * `/etc/resolv.conf`: tools such as dhclient-script then never rewrite the host's own file.
 */
export class Netns {
  private destroyed = false;

  private constructor(readonly name: string) {}

  static async create(prefix = "v6t"): Promise<Netns> {
    return Netns.createNamed(uniqueName(prefix));
  }

  /** Creates a namespace with an exact name (the lab uses fixed names so `lab down` finds them). */
  static async createNamed(name: string): Promise<Netns> {
    mkdirSync(`/etc/netns/${name}`, { recursive: true });
    writeFileSync(`/etc/netns/${name}/resolv.conf`, "");
    live.add(name);
    await run("ip", ["netns", "add", name]);
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

  /** Writes one sysctl inside the namespace (`net.ipv6.conf.br0.accept_ra`, "0"). */
  async sysctl(key: string, value: string): Promise<void> {
    await this.exec("sysctl", ["-q", "-w", `${key}=${value}`]);
  }

  /**
   * Keeps the namespace after this process exits (the exit hook would delete it): for
   * `v6agent lab --keep`, whose record lets `lab down` delete it later.
   */
  release(): void {
    live.delete(this.name);
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await deleteNamespace(this.name);
    live.delete(this.name);
  }
}

/** Deletes a namespace and its /etc/netns directory; a missing namespace is not an error. */
export async function deleteNamespace(name: string): Promise<void> {
  await run("ip", ["netns", "del", name], { okExitCodes: [0, 1] });
  rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
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
 * Creates a veth pair with one end (`nameA`) in `a` and the other (`nameB`) in `b`, both up.
 * The pair is created inside `a`, so nothing ever appears in the host's own namespace.
 */
export async function vethBetween(a: Netns, nameA: string, b: Netns, nameB: string, options: { macB?: string } = {}): Promise<void> {
  const peer = ["name", nameB, "netns", b.name];
  if (options.macB !== undefined) peer.push("address", options.macB);
  await a.exec("ip", ["link", "add", nameA, "type", "veth", "peer", ...peer]);
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
    rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
  }
});

export function liveNamespaces(): readonly string[] {
  return [...live];
}

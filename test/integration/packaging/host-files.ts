import { run } from "../../../src/exec.js";

/**
 * Every path a package's install and purge could leave behind: the whole of /usr and /etc (the
 * package's files, its unit, its docs, /etc/v6agent), dpkg's database (/var/lib/dpkg: status,
 * info/v6agent.*) and systemd's enablement records (/var/lib/systemd), plus /var/lib/v6agent
 * and apt's package cache. Paths only: dpkg rewrites its own files on every run.
 */
const ROOTS = ["/usr", "/etc", "/var/lib/dpkg", "/var/lib/systemd", "/var/lib/v6agent", "/var/cache/apt/archives"];

/**
 * What other tests running at the same time create and remove (network namespaces' resolv.conf
 * under /etc/netns, libvirt's domain and network definitions), and dpkg's lock files.
 */
const NOISE = [/^\/etc\/netns\//, /^\/etc\/libvirt\//, /^\/var\/lib\/dpkg\/(lock|lock-frontend|triggers\/Lock)$/];

export async function hostFiles(): Promise<Set<string>> {
  // find exits 1 when a root is missing (/var/lib/v6agent before an install): that is no error.
  const { stdout } = await run("find", [...ROOTS, "-xdev"], { okExitCodes: [0, 1], timeoutMs: 60_000 });
  return new Set(
    stdout
      .split("\n")
      .filter((path) => path !== "")
      .filter((path) => !NOISE.some((pattern) => pattern.test(path))),
  );
}

/** Paths in `after` that `before` lacked, and the reverse. */
export function difference(before: Set<string>, after: Set<string>): { added: string[]; removed: string[] } {
  return {
    added: [...after].filter((path) => !before.has(path)).sort(),
    removed: [...before].filter((path) => !after.has(path)).sort(),
  };
}

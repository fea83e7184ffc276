import { existsSync, realpathSync } from "node:fs";
import { basename, join } from "node:path";
import { V6Error } from "../../errors.js";
import { CommandError, run } from "../../exec.js";
import { parseSave, type SavedTable } from "./live.js";

/** Which binaries speak to the kernel: the nf_tables flavour (Debian's default) or legacy. */
export interface XtablesTools {
  flavour: "nft" | "legacy";
  ebRestore: string;
  ebSave: string;
  ip6Restore: string;
  ip6Save: string;
}

/** The dom0 lock xenopsd takes around its ebtables changes. */
export const XAPI_EBTABLES_LOCK = "/var/lock/ebtables.lock";

/** dom0's system Python (XenServer 8 / XCP-ng 8.3 ship it; xapi's own scripts use it). */
const LOCK_PYTHON = "/usr/bin/python3";
/**
 * Takes an fcntl lock on argv[1] (util-linux flock(1) takes a BSD lock, which does not exclude
 * POSIX locks on Linux), then becomes argv[2..]: the lock lives as long as that process and the
 * batch on stdin passes straight through.
 */
const FCNTL_LOCK_EXEC = [
  "import fcntl, os, sys",
  "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)",
  "fcntl.lockf(fd, fcntl.LOCK_EX)",
  "os.set_inheritable(fd, True)",
  "os.execvp(sys.argv[2], sys.argv[2:])",
].join("\n");

export type Tool = "eb" | "ip6";

/** One table of one tool, as `*-save -t <table>` and `*-restore` name it. */
export interface Table {
  tool: Tool;
  table: "filter" | "nat" | "raw";
}

/**
 * The flavour from where `ebtables` resolves (Debian's alternatives: `xtables-nft-multi` or
 * `xtables-legacy-multi`), without starting it; undefined when it is not installed or the name
 * does not tell.
 */
export function flavourOnPath(): "nft" | "legacy" | undefined {
  const path = [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
  for (const dir of path) {
    if (dir === "") continue;
    const candidate = join(dir, "ebtables");
    if (!existsSync(candidate)) continue;
    const target = basename(realpathSync(candidate));
    if (/legacy/.test(target)) return "legacy";
    if (/nft/.test(target)) return "nft";
    return undefined;
  }
  return undefined;
}

export async function detectTools(netns?: string): Promise<XtablesTools> {
  const flavour = flavourOnPath() ?? (/legacy/.test((await run("ebtables", ["--version"], { netns })).stdout) ? "legacy" : "nft");
  if (flavour === "legacy") {
    return {
      flavour: "legacy",
      ebRestore: "ebtables-legacy-restore",
      ebSave: "ebtables-legacy-save",
      ip6Restore: "ip6tables-legacy-restore",
      ip6Save: "ip6tables-legacy-save",
    };
  }
  return {
    flavour: "nft",
    ebRestore: "ebtables-nft-restore",
    ebSave: "ebtables-nft-save",
    ip6Restore: "ip6tables-nft-restore",
    ip6Save: "ip6tables-nft-save",
  };
}

/** Runs the xtables tools in one namespace, each batch under the optional fcntl lock. */
export class XtablesRunner {
  constructor(
    readonly tools: XtablesTools,
    private readonly netns: string | undefined,
    private readonly lockFile: string | undefined,
  ) {}

  async save(table: Table): Promise<SavedTable> {
    const command = table.tool === "eb" ? this.tools.ebSave : this.tools.ip6Save;
    const { stdout } = await run(command, ["-c", "-t", table.table], { netns: this.netns });
    return parseSave(stdout, table.table);
  }

  /** One atomic `*-restore --noflush` batch for one table (nothing when `lines` is empty). */
  async restore(table: Table, lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    const tool = table.tool === "eb" ? this.tools.ebRestore : this.tools.ip6Restore;
    const toolArgs = table.tool === "eb" ? ["--noflush"] : ["-w", "5", "--noflush"];
    const [command, args] =
      this.lockFile === undefined ? [tool, toolArgs] : [LOCK_PYTHON, ["-c", FCNTL_LOCK_EXEC, this.lockFile, tool, ...toolArgs]];
    try {
      await run(command, args, { input: [`*${table.table}`, ...lines, "COMMIT", ""].join("\n"), netns: this.netns });
    } catch (error) {
      const detail = error instanceof CommandError ? error.stderr.trim().split("\n").slice(0, 4).join("; ") : String(error);
      throw new V6Error("firewall_failure", `${tool} batch failed: ${detail}`, { cause: error });
    }
  }

  /** Tries each batch in turn; the first that applies wins (each attempt is atomic). */
  async restoreFirst(table: Table, variants: readonly (readonly string[])[]): Promise<void> {
    let last: unknown;
    for (const lines of variants) {
      try {
        await this.restore(table, lines);
        return;
      } catch (error) {
        last = error;
      }
    }
    throw last;
  }

  /** Bridged IPv6 reaches ip6tables only with this per-namespace switch on. */
  async ensureBridgeNetfilter(): Promise<void> {
    await run("sysctl", ["-q", "-w", "net.bridge.bridge-nf-call-ip6tables=1", "net.bridge.bridge-nf-call-iptables=1"], {
      netns: this.netns,
    });
  }
}

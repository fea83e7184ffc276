import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { run } from "../exec.js";
import { nft } from "../firewall/nft/libnftables.js";
import { type CheckResult, fail, ok, warn } from "./check.js";

export interface ToolVersion {
  tool: string;
  version?: string;
  /** `nf_tables` or `legacy` for the xtables family. */
  flavour?: string;
}

interface ToolSpec {
  tool: string;
  /** How to make it print its version; absent for tools that have no such flag. */
  args?: string[];
  package: string;
  /** Whether the host cannot work without it for the chosen backend. */
  required: boolean;
}

/** The external programs the agent runs, with versions and xtables flavour. */
export async function toolChecks(backend: "nft" | "xtables" | "auto"): Promise<{ checks: CheckResult[]; versions: ToolVersion[] }> {
  const specs: ToolSpec[] = [
    { tool: "ip", args: ["-V"], package: "iproute2", required: true },
    { tool: "sysctl", args: ["--version"], package: "procps", required: true },
    { tool: "nft", args: ["--version"], package: "nftables", required: backend === "nft" },
    { tool: "ebtables", args: ["--version"], package: "ebtables", required: backend === "xtables" },
    { tool: "ebtables-restore", package: "ebtables", required: backend === "xtables" },
    { tool: "ip6tables", args: ["--version"], package: "iptables", required: backend === "xtables" },
    { tool: "ip6tables-restore", args: ["--version"], package: "iptables", required: backend === "xtables" },
  ];
  const checks: CheckResult[] = [];
  const versions: ToolVersion[] = [];
  for (const spec of specs) {
    if (spec.args === undefined) {
      if (findInPath(spec.tool) === undefined) {
        const message = `${spec.tool} is not installed`;
        checks.push(
          spec.required
            ? fail(`tool.${spec.tool}`, message, `apt-get install ${spec.package}`)
            : warn(`tool.${spec.tool}`, message, `apt-get install ${spec.package}`),
        );
      } else checks.push(ok(`tool.${spec.tool}`, `${spec.tool} present`));
      continue;
    }
    try {
      const { stdout, stderr } = await run(spec.tool, spec.args, { timeoutMs: 5000 });
      const text = `${stdout}${stderr}`.trim().split("\n")[0] ?? "";
      const version = /v?(\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1];
      const flavour = /\((nf_tables|legacy)\)/.exec(text)?.[1];
      versions.push({ tool: spec.tool, version, flavour });
      checks.push(ok(`tool.${spec.tool}`, `${spec.tool} ${version ?? "(version unknown)"}${flavour === undefined ? "" : ` (${flavour})`}`));
    } catch {
      const message = `${spec.tool} is not installed`;
      const fix = `apt-get install ${spec.package}`;
      checks.push(spec.required ? fail(`tool.${spec.tool}`, message, fix) : warn(`tool.${spec.tool}`, message, fix));
    }
  }
  checks.push(await libnftablesCheck(backend));
  const flavours = new Set(versions.filter((v) => v.flavour !== undefined).map((v) => v.flavour));
  if (flavours.size > 1) {
    checks.push(
      warn(
        "tool.xtables-flavour",
        `ebtables and ip6tables use different flavours (${[...flavours].join(", ")})`,
        "point both at the same flavour: update-alternatives --config ebtables / ip6tables",
      ),
    );
  }
  return { checks, versions };
}

/** The nft backend runs libnftables in-process through native/: the addon must load and work. */
async function libnftablesCheck(backend: "nft" | "xtables" | "auto"): Promise<CheckResult> {
  try {
    // A dry run: parsed, evaluated and checked by the kernel, nothing committed (a listing
    // would fetch the whole ruleset, ~0.3 s with 1,000 ports).
    await nft("add table bridge v6agent_probe", { dryRun: true });
    return ok("tool.libnftables", "libnftables works (the nft backend runs it in-process)");
  } catch (error) {
    const message = `libnftables cannot be used: ${(error as Error).message}`;
    const fix = "apt-get install libnftables1 libnftables-dev, then rebuild v6agent (npm run build)";
    return backend === "nft" ? fail("tool.libnftables", message, fix) : warn("tool.libnftables", message, fix);
  }
}

/** The executable's path from PATH (plus the sbin directories root's tools live in). */
export function findInPath(tool: string): string | undefined {
  const directories = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin"];
  for (const directory of directories) {
    if (directory === "") continue;
    try {
      accessSync(join(directory, tool), constants.X_OK);
      return join(directory, tool);
    } catch {
      // not here
    }
  }
  return undefined;
}

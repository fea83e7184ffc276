import { hostname } from "node:os";
import { type CheckResult, type DiagReport, type VifRow, worstOf } from "./check.js";
import { kernelChecks } from "./kernel.js";
import { type MgmtTarget, mgmtChecks } from "./mgmt.js";
import { sysctlChecks } from "./sysctl.js";
import { toolChecks } from "./tools.js";

export interface DiagOptions {
  backend: "auto" | "nft" | "xtables";
  /** Check the host side inside this namespace (the lab runs its "host" in one). */
  netns?: string;
  management?: readonly MgmtTarget[];
  /** Bridges and guest ports whose sysctls must keep the host from taking guest RAs. */
  devices?: readonly { device: string; role: "bridge" | "port" }[];
  /** Checks that need the agent's state, firewall and hypervisor (src/diag/agent-checks.ts). */
  agentChecks?: () => Promise<{ checks: CheckResult[]; vifs: VifRow[] }>;
}

/**
 * The whole `v6agent diag` / `host.diagnose` report. Every section runs on its own, so a
 * broken hypervisor or an unreachable management server still leaves the rest of the report.
 */
export async function diagnose(options: DiagOptions): Promise<DiagReport> {
  const checks: CheckResult[] = [];
  checks.push(...(await kernelChecks({ needBrNetfilter: options.backend === "xtables" })));
  checks.push(...(await toolChecks(options.backend)).checks);
  if (options.devices !== undefined && options.devices.length > 0) checks.push(...(await sysctlChecks(options.devices, options.netns)));
  for (const target of options.management ?? []) checks.push(...(await mgmtChecks(target)));
  let vifs: VifRow[] | undefined;
  if (options.agentChecks !== undefined) {
    try {
      const result = await options.agentChecks();
      checks.push(...result.checks);
      vifs = result.vifs;
    } catch (error) {
      checks.push({
        name: "agent.state",
        status: "fail",
        message: `could not inspect the agent's state: ${(error as Error).message}`,
        fix: "see the error; check the config's stateDir and hypervisor",
      });
    }
  }
  return {
    hostname: hostname(),
    generatedAt: new Date().toISOString(),
    worst: worstOf(checks),
    checks,
    vifs,
  };
}

/** Human form: one line per check, fixes indented under failures, then the VIF table. */
export function formatDiagReport(report: DiagReport): string {
  const symbol = { ok: "ok  ", warn: "WARN", fail: "FAIL" } as const;
  const lines = [`v6agent diag on ${report.hostname} at ${report.generatedAt}`];
  for (const check of report.checks) {
    lines.push(`[${symbol[check.status]}] ${check.name}: ${check.message}`);
    if (check.fix !== undefined) lines.push(`       fix: ${check.fix}`);
  }
  if (report.vifs !== undefined && report.vifs.length > 0) {
    lines.push(
      "",
      "VM                                    MAC                device          DUID-LL                         link-local                 rules  drops  DUID sent",
    );
    for (const vif of report.vifs) {
      const drops = Object.entries(vif.drops ?? {})
        .filter(([, count]) => count > 0)
        .map(([reason, count]) => `${count} ${reason}`)
        .join(", ");
      lines.push(
        `${vif.vm.padEnd(37)} ${vif.mac.padEnd(18)} ${(vif.device ?? "-").padEnd(15)} ${vif.duidLL.padEnd(31)} ${vif.linkLocal.padEnd(26)} ${(vif.rulesPresent ? "yes" : "NO").padEnd(6)} ${(drops || "-").padEnd(6)} ${duidSent(vif)}`,
      );
    }
  }
  lines.push("", `worst: ${report.worst}`);
  return lines.join("\n");
}

/** `DUID-LL (matches)`, `DUID-LLT 00:01:… MISMATCH`, or `-` when nothing was seen yet. */
function duidSent(vif: VifRow): string {
  if (vif.observedDuid === undefined) return "-";
  return vif.duidMatches === true ? `${vif.observedDuid.split(" ")[0]} (matches)` : `${vif.observedDuid} MISMATCH`;
}

import { existsSync } from "node:fs";
import { DEFAULT_CONFIG_PATH, loadAgentConfig } from "../daemon/config.js";
import { loadIdentityEvidence } from "../daemon/dhcp-identity.js";
import { diagnoseWith } from "../daemon/diagnose.js";
import { type AgentParts, buildAgentParts } from "../daemon/parts.js";
import { observedDuidOf } from "../dhcp-observe/index.js";
import { exitCodeFor } from "../diag/check.js";
import { diagnose, formatDiagReport } from "../diag/diagnose.js";
import { createLogger } from "../log.js";
import { CliExit, endSoon } from "./exit.js";

export interface DiagCommandOptions {
  config?: string;
  json?: boolean;
}

/**
 * `v6agent diag`: runs without the daemon and without the management server. With a config
 * (the default path when it exists) it also inspects the agent's desired state, hypervisor and
 * live rules; without one, only the host checks. Exit code: 0 ok, 1 warnings, 2 failures.
 */
export async function runDiag(options: DiagCommandOptions): Promise<void> {
  const configPath = options.config ?? (existsSync(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : undefined);
  let report: Awaited<ReturnType<typeof diagnose>>;
  if (configPath === undefined) {
    report = await diagnose({ backend: "auto" });
  } else {
    const config = await loadAgentConfig(configPath);
    const logger = createLogger("silent");
    const parts: AgentParts = await buildAgentParts(config, logger);
    // Read-only: diag never moves a damaged state file aside; the daemon does that.
    const desired = await parts.store.load({ readOnly: true });
    // The hypervisor check connects (libvirt URI or XAPI login) and closes again.
    // What the daemon saw guests send (it saves its DHCPv6 identity evidence in the state directory).
    const identities = await loadIdentityEvidence(config.stateDir).catch(() => undefined);
    report = await diagnoseWith(
      parts,
      () => desired,
      { backend: parts.backend.hypervisor, connect: true },
      () => parts.store.unusable(),
      identities === undefined ? undefined : (device) => observedDuidOf(identities, device),
    ).finally(endSoon);
  }
  process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatDiagReport(report)}\n`);
  const code = exitCodeFor(report.worst);
  if (code !== 0) throw new CliExit(code);
}

import { type AgentConfig, loadAgentConfig } from "../daemon/config.js";
import { checkHost, formatHostCheck } from "../daemon/host-check.js";
import { buildAgentParts } from "../daemon/parts.js";
import { V6Error } from "../errors.js";
import { createLogger } from "../log.js";
import { CliExit, EXIT_CONFIG, EXIT_FAILURE, EXIT_WOULD_CHANGE, endSoon } from "./exit.js";

/**
 * `v6agent run --check`: the configuration validated (every mistake, exit 78), then what a start
 * would change on this host, applied nowhere (src/daemon/host-check.ts). Exit 0 when nothing
 * would change, 4 when something would (listed), 1 when the plan cannot be computed.
 */
export async function runCheck(configPath: string, options: { json?: boolean }): Promise<void> {
  let config: AgentConfig;
  try {
    config = await loadAgentConfig(configPath);
  } catch (error) {
    throw error instanceof V6Error ? new CliExit(EXIT_CONFIG, error) : error;
  }
  const parts = await buildAgentParts(config, createLogger("silent"));
  const check = await checkHost(configPath, config, parts).finally(endSoon);
  process.stdout.write(options.json ? `${JSON.stringify(check, null, 2)}\n` : `${formatHostCheck(check)}\n`);
  if (check.problems.length > 0) throw new CliExit(EXIT_FAILURE);
  if (!check.inSync) throw new CliExit(EXIT_WOULD_CHANGE);
}

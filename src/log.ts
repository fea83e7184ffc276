import { type Logger, pino } from "pino";

/**
 * The root logger: pino JSON on stderr (stdout stays free for command output such as `--json`).
 * Components take a child with their bindings: `logger.child({ component: "firewall" })`.
 */
export function createLogger(level: string = process.env.V6AGENT_LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination(2));
}

export type { Logger };

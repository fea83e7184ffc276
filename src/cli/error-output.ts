import { CommanderError } from "commander";
import { ConfigError } from "../daemon/config-problems.js";
import { V6Error } from "../errors.js";

/** A command's error as `--json` prints it on stdout: `{"error": {...}}`. */
export interface JsonError {
  error: {
    /** An ErrorCode (src/errors.ts), `usage` for a command-line mistake, or `internal`. */
    code: string;
    message: string;
    field?: string;
    /** Every mistake of a configuration file (ConfigError). */
    problems?: { field: string; message: string }[];
  };
}

/** Whether the command line asks for JSON (`--json` before any `--`): errors then come as JSON too. */
export function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end)).includes("--json");
}

export function jsonError(error: unknown): JsonError {
  if (error instanceof ConfigError) {
    return { error: { code: error.code, message: error.message, field: error.field, problems: [...error.problems] } };
  }
  if (error instanceof V6Error) return { error: { code: error.code, message: error.message, field: error.field } };
  if (error instanceof CommanderError) return { error: { code: "usage", message: error.message.replace(/^error: /, "") } };
  return { error: { code: "internal", message: error instanceof Error ? error.message : String(error) } };
}

/**
 * Prints a command's error: the one-line (or, for a configuration, one line per mistake) message
 * on stderr, and with `--json` the same as JSON on stdout, where the command's output would be.
 */
export function printError(error: unknown, json: boolean): void {
  if (json) process.stdout.write(`${JSON.stringify(jsonError(error), null, 2)}\n`);
  // Commander has printed its own text on stderr.
  if (error instanceof CommanderError) return;
  if (error instanceof V6Error) process.stderr.write(`v6agent: ${error.message}\n`);
  else process.stderr.write(`v6agent: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
}

/**
 * The one error family of v6agent (design section 8). Every failure the agent reports carries a
 * machine-readable code, a human message and, where there is one, the offending input field.
 * The protocol layer maps these to JSON-RPC error objects; the CLI to a one-line message and a
 * non-zero exit.
 */

export type ErrorCode =
  | "invalid_argument"
  | "not_found"
  | "conflict"
  | "hypervisor_failure"
  | "firewall_failure"
  | "host_failure"
  | "busy"
  | "timeout"
  | "unavailable"
  | "not_implemented"
  | "internal";

export class V6Error extends Error {
  readonly code: ErrorCode;
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, options?: { field?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "V6Error";
    this.code = code;
    this.field = options?.field;
  }
}

/** Bad input from the network, a config file or the command line. */
export class InvalidArgumentError extends V6Error {
  constructor(field: string, message: string) {
    super("invalid_argument", `${field}: ${message}`, { field });
    this.name = "InvalidArgumentError";
  }
}

export function isV6Error(error: unknown): error is V6Error {
  return error instanceof V6Error;
}

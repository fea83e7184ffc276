import { isAbsolute } from "node:path";
import { InvalidArgumentError } from "../errors.js";
import type { ConfigProblems } from "./config-problems.js";

/** The value checks every configuration field is made of; each throws InvalidArgumentError naming its field. */

export type Raw = Record<string, unknown>;

/**
 * A mapping with only `known` keys. Each unknown key is one problem (with a hint for a near
 * miss) and the known ones are still parsed; a value that is no mapping at all is one problem
 * and undefined, so the fields under it are not reported again as missing.
 */
export function section(input: unknown, field: string, known: readonly string[], problems: ConfigProblems): Raw | undefined {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    problems.add(field, `expected a mapping, got ${typeName(input)}`);
    return undefined;
  }
  for (const key of Object.keys(input)) {
    if (known.includes(key)) continue;
    const prefix = field === "(config)" ? "" : `${field}.`;
    const hint = known.find((candidate) => candidate.toLowerCase() === key.toLowerCase().replaceAll(/[-_]/g, ""));
    problems.add(`${prefix}${key}`, `unknown field${hint ? ` (did you mean ${hint}?)` : ""}; known: ${known.join(", ")}`);
  }
  return input as Raw;
}

export function oneOf<T extends string>(input: unknown, field: string, choices: readonly T[]): T {
  if (typeof input !== "string" || !(choices as readonly string[]).includes(input)) {
    throw new InvalidArgumentError(field, `${JSON.stringify(input)}: expected one of ${choices.join(", ")}`);
  }
  return input as T;
}

export function boolean(input: unknown, field: string): boolean {
  if (typeof input !== "boolean") throw new InvalidArgumentError(field, `expected true or false, got ${JSON.stringify(input)}`);
  return input;
}

export function integer(input: unknown, field: string, min: number, max: number): number {
  if (typeof input !== "number" || !Number.isInteger(input) || input < min || input > max) {
    throw new InvalidArgumentError(field, `expected an integer from ${min} to ${max}, got ${JSON.stringify(input)}`);
  }
  return input;
}

export function absolutePath(input: unknown, field: string): string {
  if (typeof input !== "string" || !isAbsolute(input) || input.includes("\0")) {
    throw new InvalidArgumentError(field, `expected an absolute path, got ${JSON.stringify(input)}`);
  }
  return input;
}

/** A unix socket path: absolute, and short enough for `sun_path` (108 bytes with its NUL), or listen() fails at start. */
export function socketPath(input: unknown, field: string): string {
  const path = absolutePath(input, field);
  const bytes = Buffer.byteLength(path);
  if (bytes > 107) throw new InvalidArgumentError(field, `${bytes} bytes long; a unix socket path may have at most 107`);
  return path;
}

export function nonEmptyString(input: unknown, field: string): string {
  if (typeof input !== "string" || input.trim() === "") throw new InvalidArgumentError(field, "expected a non-empty string");
  return input;
}

/** A bearer token goes into an HTTP header: one line of visible ASCII (a control character makes `ws` throw). */
export const HEADER_SAFE = /^[\x21-\x7e]+$/;
export const TOKEN_CHARACTERS =
  "must be one line of visible ASCII characters (no spaces or control characters), as an HTTP header carries it";

export function hostId(input: unknown, field: string): string {
  if (typeof input !== "string" || !/^[A-Za-z0-9_.:-]{1,128}$/.test(input)) {
    throw new InvalidArgumentError(field, `${JSON.stringify(input)}: expected 1–128 characters of letters, digits, '_', '.', ':', '-'`);
  }
  return input;
}

export function namespaceName(input: unknown, field: string): string {
  if (typeof input !== "string" || !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(input)) {
    throw new InvalidArgumentError(
      field,
      `${JSON.stringify(input)}: expected a network namespace name (letters, digits, '_', '.', '-'; up to 64)`,
    );
  }
  return input;
}

export function typeName(input: unknown): string {
  if (input === null) return "null";
  if (Array.isArray(input)) return "a list";
  return typeof input;
}

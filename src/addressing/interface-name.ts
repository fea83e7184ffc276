import { InvalidArgumentError } from "../errors.js";

/** A Linux network interface name that is safe to hand to ip, nft or ebtables. */
export type InterfaceName = string & { readonly __brand: "InterfaceName" };

/** IFNAMSIZ is 16 including the terminating NUL. */
export const MAX_INTERFACE_NAME_BYTES = 15;

/**
 * Linux itself refuses empty names, `.`, `..`, `/`, `:` and whitespace. We are stricter: only
 * letters, digits, `_`, `.` and `-` (never first), so a name can never be read as an option or
 * carry a shell or rule-language metacharacter into any tool.
 */
export function parseInterfaceName(input: unknown, field = "device"): InterfaceName {
  if (typeof input !== "string") {
    throw new InvalidArgumentError(field, `expected an interface name string, got ${typeof input}`);
  }
  if (input.length === 0) {
    throw new InvalidArgumentError(field, "interface name is empty");
  }
  const bytes = Buffer.byteLength(input, "utf8");
  if (bytes > MAX_INTERFACE_NAME_BYTES) {
    throw new InvalidArgumentError(
      field,
      `interface name ${JSON.stringify(input)} is ${bytes} bytes; Linux allows at most ${MAX_INTERFACE_NAME_BYTES}`,
    );
  }
  if (input === "." || input === "..") {
    throw new InvalidArgumentError(field, `${JSON.stringify(input)} is not a valid interface name`);
  }
  const bad = /[^A-Za-z0-9_.-]/.exec(input);
  if (bad !== null) {
    throw new InvalidArgumentError(
      field,
      `interface name ${JSON.stringify(input)} contains ${JSON.stringify(bad[0])}; only letters, digits, '_', '.' and '-' are allowed`,
    );
  }
  if (input.startsWith("-")) {
    throw new InvalidArgumentError(field, `interface name ${JSON.stringify(input)} must not start with '-'`);
  }
  return input as InterfaceName;
}

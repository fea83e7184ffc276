import { randomBytes } from "node:crypto";

/**
 * A unique, short suffix for test resources (namespaces, bridges, taps, domains) so parallel
 * tests and leftover runs never collide. Interface names must stay within 15 bytes, so callers
 * use short prefixes: `uniqueName("br")` → `br-k3x9q2`.
 */
export function uniqueSuffix(): string {
  return randomBytes(4).readUInt32BE(0).toString(36).padStart(7, "0").slice(0, 7);
}

export function uniqueName(prefix: string): string {
  const name = `${prefix}-${uniqueSuffix()}`;
  if (Buffer.byteLength(name) > 15) throw new Error(`test name ${name} exceeds 15 bytes; use a shorter prefix`);
  return name;
}

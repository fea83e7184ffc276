import { createHash } from "node:crypto";

/**
 * A short fingerprint of a command (method and canonicalised params), journalled with its id so
 * that an id re-sent with a different request is recognised and refused instead of being
 * answered with the first request's result. Object keys are sorted, so the member order a server
 * happens to serialise in does not matter; values are compared after the params parser
 * canonicalised them (MAC case, address spelling). The params' depth is bounded by the frame
 * parser, so the recursion is too.
 */
export function requestDigest(method: string, params: unknown): string {
  return createHash("sha256").update(method).update("\n").update(canonicalJson(params)).digest("base64url").slice(0, 22);
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

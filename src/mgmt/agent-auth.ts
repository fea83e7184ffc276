import { createHash, timingSafeEqual } from "node:crypto";
import type { PeerCertificate } from "node:tls";
import { InvalidArgumentError } from "../errors.js";

/**
 * How the reference server binds an agent's `hostId` to what it authenticated with (issue 17):
 *
 * - mutual TLS: the hostId must be one of the client certificate's subjectAltName DNS names, or,
 *   when it has none, its subject CN;
 * - per-host tokens: a file of `sha256:<hex of SHA-256 of the token> <hostId>` lines; the bearer
 *   token names exactly one host;
 * - lab tokens: tokens shared by every agent. They prove only that the agent was given the lab's
 *   secret, not which host it is: any holder may say hello as any host. Labs and tests only.
 *
 * With both a certificate and a per-host token, both must name the hostId.
 */
export interface Credentials {
  /** Host names of the client certificate (mutual TLS), per the mapping above. */
  certificateNames?: readonly string[];
  /** Subject CN, for display. */
  certificateSubject?: string;
  /** The host a per-host token belongs to. */
  tokenHost?: string;
  /** A lab token was presented. */
  labToken?: boolean;
}

export type CredentialKind = "certificate" | "host-token" | "lab-token" | "none";

/** Per-host tokens: hex SHA-256 of a token → the host it belongs to. */
export type HostTokens = ReadonlyMap<string, string>;

/** The documented hash of a token (tokens are random, ≥ 128 bits: a fast hash is the right one). */
export function tokenHash(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** Parses a per-host token file; `source` names it in errors. */
export function parseHostTokens(text: string, source: string): HostTokens {
  const tokens = new Map<string, string>();
  const hosts = new Set<string>();
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const match = /^sha256:([0-9a-fA-F]{64})\s+(\S.{0,127})$/.exec(line);
    const where = `${source}:${index + 1}`;
    if (match === null)
      throw new InvalidArgumentError(where, "expected `sha256:<64 hex digits> <hostId>` (the SHA-256 of the agent's token)");
    const hash = (match[1] as string).toLowerCase();
    const host = (match[2] as string).trim();
    if (tokens.has(hash)) throw new InvalidArgumentError(where, "this token hash is listed twice");
    if (hosts.has(host)) throw new InvalidArgumentError(where, `host ${host} has a token already (one token per host)`);
    tokens.set(hash, host);
    hosts.add(host);
  });
  return tokens;
}

/** Lab tokens: constant-time comparison against every accepted token. */
export function isLabToken(tokens: readonly string[], presented: string): boolean {
  return tokens.some((token) => sameSecret(token, presented));
}

export function sameSecret(expected: string, presented: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The host names a client certificate stands for: its DNS subjectAltNames, else its subject CN. */
export function certificateHostNames(certificate: PeerCertificate): string[] {
  const dns = (certificate.subjectaltname ?? "")
    .split(/,\s*/)
    .filter((entry) => entry.startsWith("DNS:"))
    .map((entry) => unquote(entry.slice(4)));
  if (dns.length > 0) return dns;
  const cn = certificate.subject?.CN;
  if (cn === undefined) return [];
  return Array.isArray(cn) ? cn : [cn];
}

/** Why `hostId` may not say hello on a connection with these credentials; undefined when it may. */
export function identityMismatch(hostId: string, credentials: Credentials): string | undefined {
  const names = credentials.certificateNames;
  if (names !== undefined && !names.includes(hostId)) {
    return `the client certificate is for ${names.length === 0 ? "no host name" : names.map((name) => JSON.stringify(name)).join(", ")}`;
  }
  if (credentials.tokenHost !== undefined && credentials.tokenHost !== hostId) {
    return `the bearer token belongs to host ${JSON.stringify(credentials.tokenHost)}`;
  }
  return undefined;
}

export function credentialKind(credentials: Credentials): CredentialKind {
  if (credentials.certificateNames !== undefined) return "certificate";
  if (credentials.tokenHost !== undefined) return "host-token";
  if (credentials.labToken === true) return "lab-token";
  return "none";
}

/** Node quotes a SAN that holds a comma or quote as a JSON string. */
function unquote(value: string): string {
  if (!value.startsWith('"')) return value;
  try {
    return JSON.parse(value) as string;
  } catch {
    return value;
  }
}

import { isIP } from "node:net";
import type { ClientOptions } from "ws";
import { InvalidArgumentError } from "../errors.js";

/**
 * Security settings of the agent's connection. `wss://` servers must chain to the pinned CA (the
 * system trust store is not used); the client authenticates with a certificate (mutual TLS), a
 * bearer token, or both. Plain `ws://` carries commands that reconfigure the host, so it is
 * accepted only to a loopback address unless `allowInsecure` says otherwise.
 */
export interface ChannelTls {
  /** PEM of the CA the management server's certificate must chain to. */
  ca: string | Buffer;
  /** PEM client certificate and key for mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Name to check the server certificate against when it differs from the URL's host. */
  servername?: string;
}

export interface ConnectionSecurity {
  tls?: ChannelTls;
  token?: string;
  allowInsecure?: boolean;
}

const LOOPBACK_NAMES = new Set(["localhost", "ip6-localhost"]);

export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.startsWith("[") ? hostname.slice(1, -1) : hostname;
  if (LOOPBACK_NAMES.has(host.toLowerCase())) return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  if (isIP(host) === 6) return host === "::1" || host === "0:0:0:0:0:0:0:1";
  return false;
}

/** Checks a server URL against the security settings; throws InvalidArgumentError naming `field`. */
export function checkServerUrl(url: string, security: ConnectionSecurity, field: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidArgumentError(field, `${JSON.stringify(url)} is not a URL (expected wss://host:port/path)`);
  }
  if (parsed.protocol === "wss:") {
    if (security.tls?.ca === undefined) throw new InvalidArgumentError(field, `${url} needs a pinned CA (tls.ca) to verify the server`);
    return parsed;
  }
  if (parsed.protocol === "ws:") {
    if (!isLoopbackHost(parsed.hostname) && security.allowInsecure !== true) {
      throw new InvalidArgumentError(field, `${url} is plain ws:// to a non-loopback host; use wss:// or set the explicit insecure flag`);
    }
    return parsed;
  }
  throw new InvalidArgumentError(field, `${url} has scheme ${parsed.protocol}; expected wss: (or ws: on loopback)`);
}

/** The `ws` client options for one connection attempt. */
export function clientOptions(security: ConnectionSecurity, limits: { maxPayload: number; handshakeTimeoutMs: number }): ClientOptions {
  const options: ClientOptions = {
    maxPayload: limits.maxPayload,
    handshakeTimeout: limits.handshakeTimeoutMs,
    perMessageDeflate: false,
    followRedirects: false,
    // Invalid UTF-8 is answered by the frame parser (-32700), not by closing the connection.
    skipUTF8Validation: true,
  };
  if (security.token !== undefined) options.headers = { authorization: `Bearer ${security.token}` };
  if (security.tls !== undefined) {
    options.ca = security.tls.ca;
    options.rejectUnauthorized = true;
    if (security.tls.cert !== undefined) options.cert = security.tls.cert;
    if (security.tls.key !== undefined) options.key = security.tls.key;
    // ClientOptions omits it from its type, but ws hands every option to tls.connect.
    if (security.tls.servername !== undefined) Object.assign(options, { servername: security.tls.servername });
  }
  return options;
}

import { lookup } from "node:dns/promises";
import { readFileSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { type PeerCertificate, type TLSSocket, connect as tlsConnect } from "node:tls";
import { type CheckResult, fail, ok, warn } from "./check.js";
import { withTimeout } from "./timeout.js";

export interface MgmtTarget {
  url: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

const TIMEOUT_MS = 5000;
const EXPIRY_WARN_DAYS = 14;
const SKEW_WARN_SECONDS = 30;

/**
 * Can this host reach its management server? DNS, TCP, the TLS chain against the pinned CA,
 * certificate expiry, and clock skew from the server's HTTP Date header (TLS fails in confusing
 * ways when clocks disagree). Runs without the daemon.
 */
export async function mgmtChecks(target: MgmtTarget, now: Date = new Date()): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  let url: URL;
  try {
    url = new URL(target.url);
    if (url.protocol !== "wss:" && url.protocol !== "ws:") throw new Error("not a ws:// or wss:// URL");
  } catch (error) {
    return [fail(`mgmt.url`, `${target.url}: ${(error as Error).message}`, "fix management.servers in the config")];
  }
  const label = url.host;
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const port = Number(url.port || (url.protocol === "wss:" ? 443 : 80));
  try {
    const { address } = await lookup(host);
    results.push(ok(`mgmt.dns.${label}`, `${host} resolves to ${address}`));
  } catch (error) {
    results.push(
      fail(`mgmt.dns.${label}`, `${host} does not resolve: ${(error as Error).message}`, "check /etc/resolv.conf or use an address"),
    );
    return results;
  }
  let socket: Socket;
  try {
    socket = await withTimeout(
      new Promise<Socket>((resolve, reject) => {
        const s = netConnect({ host, port }, () => resolve(s));
        s.once("error", reject);
      }),
      `TCP connect to ${label}`,
      TIMEOUT_MS,
    );
    results.push(ok(`mgmt.tcp.${label}`, `TCP ${label} reachable`));
  } catch (error) {
    results.push(
      fail(`mgmt.tcp.${label}`, `TCP ${label}: ${(error as Error).message}`, "check the server is running and no firewall blocks the port"),
    );
    return results;
  }
  let stream: Socket | TLSSocket = socket;
  if (url.protocol === "wss:") {
    try {
      const ca = target.caFile === undefined ? undefined : readFileSync(target.caFile);
      const tls = await withTimeout(
        new Promise<TLSSocket>((resolve, reject) => {
          const t = tlsConnect(
            {
              socket,
              servername: host,
              rejectUnauthorized: false,
              ca,
              cert: target.certFile === undefined ? undefined : readFileSync(target.certFile),
              key: target.keyFile === undefined ? undefined : readFileSync(target.keyFile),
            },
            () => resolve(t),
          );
          t.once("error", reject);
        }),
        `TLS handshake with ${label}`,
        TIMEOUT_MS,
      );
      stream = tls;
      results.push(...certificateChecks(label, tls, now));
    } catch (error) {
      socket.destroy();
      results.push(
        fail(`mgmt.tls.${label}`, `TLS with ${label}: ${(error as Error).message}`, "check the server's TLS setup and management.caFile"),
      );
      return results;
    }
  }
  results.push(await clockSkew(label, host, stream, now));
  stream.destroy();
  return results;
}

function certificateChecks(label: string, tls: TLSSocket, now: Date): CheckResult[] {
  const results: CheckResult[] = [];
  if (tls.authorized) results.push(ok(`mgmt.tls.${label}`, `certificate chains to the pinned CA`));
  else {
    results.push(
      fail(
        `mgmt.tls.${label}`,
        `certificate not trusted: ${String(tls.authorizationError)}`,
        "set management.caFile to the CA that signed the server's certificate",
      ),
    );
  }
  const certificate: PeerCertificate = tls.getPeerCertificate();
  if (certificate.valid_to) {
    const days = Math.floor((Date.parse(certificate.valid_to) - now.getTime()) / 86_400_000);
    if (days < 0)
      results.push(fail(`mgmt.cert-expiry.${label}`, `server certificate expired ${-days} day(s) ago`, "renew the server certificate"));
    else if (days < EXPIRY_WARN_DAYS)
      results.push(warn(`mgmt.cert-expiry.${label}`, `server certificate expires in ${days} day(s)`, "renew the server certificate soon"));
    else results.push(ok(`mgmt.cert-expiry.${label}`, `server certificate valid for ${days} more days`));
  }
  return results;
}

/** Reads the Date header of a plain GET (a WebSocket server answers it, usually 426 or 404). */
async function clockSkew(label: string, host: string, stream: Socket, now: Date): Promise<CheckResult> {
  try {
    const header = await withTimeout(
      new Promise<string>((resolve, reject) => {
        let buffer = "";
        stream.setEncoding("utf8");
        stream.on("data", (chunk: string) => {
          buffer += chunk;
          const end = buffer.indexOf("\r\n\r\n");
          if (end >= 0) resolve(buffer.slice(0, end));
        });
        stream.once("error", reject);
        stream.once("end", () => reject(new Error("closed before answering")));
        stream.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      }),
      `HTTP request to ${label}`,
      TIMEOUT_MS,
    );
    const date = /^date:\s*(.+)$/im.exec(header)?.[1];
    if (date === undefined)
      return warn(`mgmt.clock.${label}`, "server sent no Date header; clock skew unknown", "keep both clocks synchronised (NTP)");
    const skew = Math.round((Date.parse(date) - now.getTime()) / 1000);
    if (Math.abs(skew) > SKEW_WARN_SECONDS) {
      return warn(
        `mgmt.clock.${label}`,
        `clock skew of ${skew} s with the server`,
        "synchronise this host's clock (chrony/systemd-timesyncd)",
      );
    }
    return ok(`mgmt.clock.${label}`, `clock skew ${skew} s`);
  } catch (error) {
    return warn(
      `mgmt.clock.${label}`,
      `could not read the server's clock: ${(error as Error).message}`,
      "keep both clocks synchronised (NTP)",
    );
  }
}

import { createServer as createHttpServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import { SUBPROTOCOL } from "../protocol/index.js";

export interface ListenerOptions {
  host: string;
  port: number;
  tls: { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer } | undefined;
  /** Sockets held at once (TCP, before TLS included); beyond it new ones are dropped. */
  maxConnections: number;
  /** From TCP accept to `release` (the hello): TLS, the upgrade request, the hello. */
  handshakeTimeoutMs: number;
  log: Logger | undefined;
}

/**
 * The management server's socket layer: an HTTP(S) server that only upgrades, with a cap on the
 * sockets it holds and a deadline for every socket until its agent's hello is accepted, so
 * sockets that never start TLS, never send a request or never say hello are closed within
 * seconds. With a client CA the TLS handshake asks for a certificate but does not fail on a bad
 * one: the upgrade is refused with 403 and the verification error in the status text, so both
 * ends log why (a failed handshake only says "socket hang up").
 */
export class Listener {
  private readonly options: ListenerOptions;
  private readonly server: Server;
  private readonly deadlines = new Map<Socket, NodeJS.Timeout>();

  constructor(options: ListenerOptions, onUpgrade: (request: IncomingMessage, socket: Socket, head: Buffer) => void) {
    this.options = options;
    const tls = options.tls;
    const timeouts = { headersTimeout: options.handshakeTimeoutMs, requestTimeout: options.handshakeTimeoutMs };
    this.server = tls
      ? createHttpsServer({
          cert: tls.cert,
          key: tls.key,
          ...timeouts,
          handshakeTimeout: options.handshakeTimeoutMs,
          ca: tls.ca,
          requestCert: tls.ca !== undefined,
          rejectUnauthorized: false,
        })
      : createHttpServer(timeouts);
    this.server.maxConnections = options.maxConnections;
    this.server.on("request", (_request, response) => {
      response.writeHead(426, { "content-type": "text/plain" }).end(`WebSocket (${SUBPROTOCOL}) only\n`);
    });
    this.server.on("upgrade", onUpgrade);
    this.server.on(tls ? "secureConnection" : "connection", (socket: Socket) => this.startDeadline(socket));
    this.server.on("tlsClientError", (error, socket) =>
      options.log?.info({ err: error.message, remote: socket.remoteAddress }, "refused a TLS client"),
    );
    this.server.on("drop", (data) =>
      options.log?.warn({ remote: data?.remoteAddress, max: options.maxConnections }, "connection cap reached: dropped a new connection"),
    );
  }

  async listen(): Promise<{ host: string; port: number; url: string }> {
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port, this.options.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    const hostText = address.family === "IPv6" ? `[${address.address}]` : address.address;
    return { host: address.address, port: address.port, url: `${this.options.tls ? "wss" : "ws"}://${hostText}:${address.port}/v6agent` };
  }

  async close(): Promise<void> {
    for (const timer of this.deadlines.values()) clearTimeout(timer);
    this.deadlines.clear();
    this.server.closeAllConnections?.();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The socket's agent said hello: it may stay. */
  release(socket: Socket): void {
    clearTimeout(this.deadlines.get(socket));
    this.deadlines.delete(socket);
  }

  /** Sockets still within their handshake deadline. */
  get handshaking(): number {
    return this.deadlines.size;
  }

  private startDeadline(socket: Socket): void {
    const timer = setTimeout(() => {
      this.deadlines.delete(socket);
      this.options.log?.info(
        { remote: socket.remoteAddress, ms: this.options.handshakeTimeoutMs },
        "no hello in time: closed the connection",
      );
      socket.destroy();
    }, this.options.handshakeTimeoutMs);
    this.deadlines.set(socket, timer);
    socket.once("close", () => this.release(socket));
  }
}

/** Why a client certificate was refused, in words (Node gives OpenSSL's codes). */
export function certificateRefusal(socket: TLSSocket): string {
  const code = String(socket.authorizationError ?? "no certificate");
  const words: Record<string, string> = {
    CERT_HAS_EXPIRED: "the certificate has expired",
    CERT_NOT_YET_VALID: "the certificate is not valid yet",
    INVALID_PURPOSE: "the certificate is not for client authentication (extendedKeyUsage clientAuth)",
    UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the certificate is not signed by the client CA",
    UNABLE_TO_GET_ISSUER_CERT: "the certificate is not signed by the client CA",
    UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the certificate is not signed by the client CA",
    SELF_SIGNED_CERT_IN_CHAIN: "the certificate is not signed by the client CA",
    DEPTH_ZERO_SELF_SIGNED_CERT: "the certificate is self-signed, not signed by the client CA",
    CERT_REVOKED: "the certificate is revoked",
  };
  const hasCertificate = Object.keys(socket.getPeerCertificate() ?? {}).length > 0;
  if (!hasCertificate) return "no client certificate was presented";
  return `${words[code] ?? "verification failed"} (${code})`;
}

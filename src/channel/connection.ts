import type { Logger } from "pino";
import WebSocket from "ws";
import { SUBPROTOCOL } from "../protocol/index.js";
import type { ChannelLiveness } from "./channel-options.js";
import { type ConnectionSecurity, clientOptions } from "./connection-options.js";

export interface ConnectionEvents {
  /** The WebSocket is open with our subprotocol: time to say hello. */
  open: () => void;
  frame: (data: Buffer, isBinary: boolean) => void;
  /** Called once, with the most specific reason known. */
  closed: (reason: string) => void;
}

/**
 * One connection attempt to one management server: the WebSocket, its subprotocol check, its
 * liveness (pings out, silence judged from anything heard), the deadline for the handshake plus
 * the hello answer, and the reason it ended, as specific as the transport lets it be (an HTTP
 * refusal with its status text, a TLS verification error, silence, a hello that failed).
 */
export class Connection {
  private readonly socket: WebSocket;
  private readonly liveness: ChannelLiveness;
  private readonly log: Logger | undefined;
  private reason: string | undefined;
  private lastHeard = Date.now();
  private helloTimer: NodeJS.Timeout | undefined;
  private livenessTimer: NodeJS.Timeout | undefined;
  private opened = false;

  constructor(
    server: string,
    security: ConnectionSecurity,
    limits: { maxMessageBytes: number; liveness: ChannelLiveness },
    events: ConnectionEvents,
    log: Logger | undefined,
  ) {
    this.liveness = limits.liveness;
    this.log = log;
    const socket = new WebSocket(
      server,
      SUBPROTOCOL,
      clientOptions(security, { maxPayload: limits.maxMessageBytes * 4, handshakeTimeoutMs: limits.liveness.connectTimeoutMs }),
    );
    this.socket = socket;
    this.helloTimer = setTimeout(() => this.terminate("no answer to agent.hello in time"), limits.liveness.connectTimeoutMs);
    socket.on("open", () => {
      this.opened = true;
      if (socket.protocol !== SUBPROTOCOL) {
        this.setReason(`server did not accept subprotocol ${SUBPROTOCOL}`);
        socket.close(1002, "subprotocol");
        return;
      }
      this.startLiveness();
      events.open();
    });
    socket.on("message", (data, isBinary) => {
      this.lastHeard = Date.now();
      events.frame(data as Buffer, isBinary);
    });
    socket.on("pong", () => {
      this.lastHeard = Date.now();
    });
    socket.on("unexpected-response", (_request, response) => {
      // The reference server puts its reason in the status text ("client certificate refused: …").
      const text = response.statusMessage === undefined || response.statusMessage === "" ? "" : ` ${response.statusMessage}`;
      this.terminate(`server refused the connection: HTTP ${response.statusCode}${text}`);
    });
    socket.on("error", (error: Error & { code?: string }) => this.setReason(describeError(error, security, this.opened)));
    socket.on("close", (code) => {
      clearTimeout(this.helloTimer);
      clearInterval(this.livenessTimer);
      events.closed(this.reason ?? `closed (${code})`);
    });
  }

  get isOpen(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  send(frame: string): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(frame);
  }

  /** The hello was answered: the connection is up for good (until liveness says otherwise). */
  helloAnswered(): void {
    clearTimeout(this.helloTimer);
  }

  /** Ends the connection with a close frame when it is open, else at once. */
  close(code: number, reason: string): void {
    this.setReason(reason);
    if (this.socket.readyState === WebSocket.OPEN) this.socket.close(code, reason);
    else this.socket.terminate();
  }

  /** Ends the connection without ceremony, recording why. */
  terminate(reason: string): void {
    this.setReason(reason);
    this.socket.terminate();
  }

  /** Keeps the first, most specific reason (terminate() after a refusal raises its own error). */
  private setReason(reason: string): void {
    this.reason ??= reason;
  }

  /** Liveness from answers: a peer not heard from (frames or pongs) within the timeout is dropped. */
  private startLiveness(): void {
    this.livenessTimer = setInterval(() => {
      const silentMs = Date.now() - this.lastHeard;
      if (silentMs > this.liveness.silenceTimeoutMs) {
        this.log?.warn({ silentMs }, "management server is silent; dropping the connection");
        this.terminate(`peer silent for more than ${this.liveness.silenceTimeoutMs} ms`);
        return;
      }
      if (this.socket.readyState === WebSocket.OPEN) this.socket.ping();
    }, this.liveness.pingIntervalMs);
  }
}

/**
 * A transport error in words an operator can act on. A server that refuses our client
 * certificate after the TLS handshake (TLS 1.3 checks it late) shows up as a bare "socket hang
 * up" or reset: say what it most likely means.
 */
function describeError(error: Error & { code?: string }, security: ConnectionSecurity, opened: boolean): string {
  const hungUp = error.message === "socket hang up" || error.code === "ECONNRESET";
  if (!opened && hungUp && security.tls !== undefined) {
    const which =
      security.tls.cert === undefined
        ? "this agent presented no client certificate (management.certFile) and the server may require one"
        : "the server may have refused this agent's client certificate (signed by its client CA? expired? extendedKeyUsage clientAuth?)";
    return `${error.message} during the TLS/WebSocket handshake: ${which}`;
  }
  return error.message;
}

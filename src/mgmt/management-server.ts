import { randomBytes, timingSafeEqual } from "node:crypto";
import { EventEmitter } from "node:events";
import { createServer as createHttpServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import { WebSocket, WebSocketServer } from "ws";
import { isLoopbackHost } from "../channel/connection-options.js";
import { V6Error } from "../errors.js";
import {
  type AgentHelloParams,
  decodeFrame,
  encodeError,
  encodeRequest,
  encodeResult,
  fromRpcError,
  isMethodName,
  METHODS,
  type MethodParams,
  type MethodResult,
  parseParams,
  parseResult,
  type RequestId,
  RPC_ERRORS,
  rpcError,
  type ServerMethod,
  SUBPROTOCOL,
  toRpcError,
} from "../protocol/index.js";
import { type Report, ReportLog } from "./report-log.js";

export interface ManagementServerOptions {
  /** Listen address; default 127.0.0.1, port 0 (any). */
  host?: string;
  port?: number;
  /** TLS: server certificate and key; `ca` turns on mutual TLS (clients must present a certificate it signed). */
  tls?: { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer };
  /** Accepted bearer tokens; when given, a connection without one of them is refused with 401. */
  tokens?: readonly string[];
  /** Plain ws:// on a non-loopback address. Never in production. */
  allowInsecure?: boolean;
  maxMessageBytes?: number;
  /** Told to agents in the hello answer. Default 10 s. */
  heartbeatIntervalMs?: number;
  /** Default timeout of call(). Default 120 s. */
  commandTimeoutMs?: number;
  pingIntervalMs?: number;
  /** An agent not heard from (frames or pongs) for this long is dropped. Default 30 s. */
  silenceTimeoutMs?: number;
  maxReports?: number;
  logger?: Logger;
}

export interface AgentInfo {
  hostId: string;
  hostname: string;
  hypervisor: AgentHelloParams["hypervisor"];
  versions: AgentHelloParams["versions"];
  capabilities: string[];
  inventory: AgentHelloParams["inventory"];
  connected: boolean;
  connectedAt: string;
  lastSeen: string;
  remoteAddress: string | undefined;
  /** Subject CN of the client certificate (mutual TLS). */
  certificateSubject: string | undefined;
  pendingCommands: number;
}

export interface CallOptions {
  /** Reuse an id to replay a command (the agent answers from its journal, never runs it twice). */
  id?: RequestId;
  timeoutMs?: number;
  /** Check params locally first (default true); tests switch it off to reach the agent's own checks. */
  validate?: boolean;
}

export interface ManagementServerEvents {
  agent: [info: AgentInfo];
  disconnected: [info: { hostId: string; reason: string }];
  report: [report: Report];
  /** Frames from an agent that match no pending call (errors with id null, late results after a server restart). */
  unmatched: [info: { hostId: string | undefined; frame: unknown }];
}

interface Session {
  socket: WebSocket;
  hostId: string | undefined;
  lastHeard: number;
  remoteAddress: string | undefined;
  certificateSubject: string | undefined;
}

interface PendingCall {
  hostId: string;
  method: string;
  frame: string;
  resolve: (result: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * The reference management server (design section 2): accepts agents (mutual TLS and/or bearer
 * token), keeps what they report in memory, sends commands and awaits their results. A call
 * outlives a connection: when the agent comes back, unanswered calls are sent again with the
 * same id, which the agent answers from its journal if it already ran them.
 */
export class ManagementServer extends EventEmitter<ManagementServerEvents> {
  readonly reports: ReportLog;
  private readonly options: ManagementServerOptions;
  private readonly log: Logger | undefined;
  private readonly wss: WebSocketServer;
  private readonly sessions = new Set<Session>();
  private readonly byHost = new Map<string, Session>();
  private readonly infos = new Map<string, AgentInfo>();
  private readonly resumeTokens = new Map<string, string>();
  private readonly pending = new Map<string, PendingCall>();
  private readonly idPrefix = randomBytes(6).toString("hex");
  private nextId = 0;
  private server: Server | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private agentWaiters: { hostId: string; resolve: (info: AgentInfo) => void }[] = [];

  constructor(options: ManagementServerOptions = {}) {
    super();
    const host = options.host ?? "127.0.0.1";
    if (options.tls === undefined && !isLoopbackHost(host) && options.allowInsecure !== true) {
      throw new V6Error("invalid_argument", `listen: plain ws:// on ${host} needs TLS or the explicit insecure flag`, { field: "listen" });
    }
    this.options = options;
    this.log = options.logger?.child({ component: "mgmt" });
    this.reports = new ReportLog(options.maxReports ?? 10_000);
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.maxMessageBytes * 4,
      perMessageDeflate: false,
      // Invalid UTF-8 is answered by the frame parser (-32700), not by closing the connection.
      skipUTF8Validation: true,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
  }

  private get maxMessageBytes(): number {
    return this.options.maxMessageBytes ?? 1024 * 1024;
  }

  /** Starts listening; resolves with the URL agents connect to. */
  async start(): Promise<{ host: string; port: number; url: string }> {
    const tls = this.options.tls;
    const server = tls
      ? createHttpsServer({ cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}) })
      : createHttpServer();
    server.on("request", (_request, response) => {
      response.writeHead(426, { "content-type": "text/plain" }).end(`WebSocket (${SUBPROTOCOL}) only\n`);
    });
    server.on("upgrade", (request: IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(request, socket, head));
    server.on("tlsClientError", (error) => this.log?.info({ err: error.message }, "refused a TLS client"));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port ?? 0, this.options.host ?? "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    const interval = this.options.pingIntervalMs ?? 5000;
    this.pingTimer = setInterval(() => this.checkLiveness(), interval);
    const address = server.address() as AddressInfo;
    const hostText = address.family === "IPv6" ? `[${address.address}]` : address.address;
    const url = `${tls ? "wss" : "ws"}://${hostText}:${address.port}/v6agent`;
    this.log?.info({ url }, "management server listening");
    return { host: address.address, port: address.port, url };
  }

  /** Drops every agent connection and stops listening; pending calls are rejected. */
  async stop(): Promise<void> {
    clearInterval(this.pingTimer);
    for (const session of this.sessions) session.socket.terminate();
    for (const [id, call] of this.pending) {
      clearTimeout(call.timer);
      this.pending.delete(id);
      call.reject(new V6Error("unavailable", "the management server stopped"));
    }
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    server.closeAllConnections?.();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  agents(): AgentInfo[] {
    return [...this.infos.values()].map((info) => this.snapshot(info));
  }

  agent(hostId: string): AgentInfo | undefined {
    const info = this.infos.get(hostId);
    return info === undefined ? undefined : this.snapshot(info);
  }

  /** Resolves when the agent is connected and has said hello. */
  waitForAgent(hostId: string, timeoutMs = 30_000): Promise<AgentInfo> {
    const info = this.infos.get(hostId);
    if (info?.connected) return Promise.resolve(this.snapshot(info));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.agentWaiters = this.agentWaiters.filter((waiter) => waiter.resolve !== done);
        reject(new V6Error("timeout", `agent ${hostId} did not connect within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (agentInfo: AgentInfo) => {
        clearTimeout(timer);
        resolve(agentInfo);
      };
      this.agentWaiters.push({ hostId, resolve: done });
    });
  }

  /**
   * Sends a command and resolves with its validated result, or rejects with a RemoteError
   * carrying the agent's JSON-RPC error. The call waits through disconnects (it is re-sent on
   * the agent's next hello) until its timeout.
   */
  call<M extends ServerMethod>(
    hostId: string,
    method: M,
    params: MethodParams<M> | unknown,
    options: CallOptions = {},
  ): Promise<MethodResult<M>> {
    const checked = options.validate === false ? params : parseParams(method, params);
    const id = options.id ?? `${this.idPrefix}-${++this.nextId}`;
    const key = String(id);
    if (this.pending.has(key)) return Promise.reject(new V6Error("conflict", `a call with id ${key} is already pending`, { field: "id" }));
    const timeoutMs = options.timeoutMs ?? this.options.commandTimeoutMs ?? 120_000;
    return new Promise<MethodResult<M>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(key);
        reject(new V6Error("timeout", `${method} to ${hostId} got no result within ${timeoutMs} ms (id ${key})`));
      }, timeoutMs);
      const frame = encodeRequest(id, method, checked);
      this.pending.set(key, {
        hostId,
        method,
        frame,
        timer,
        reject,
        resolve: (result) => {
          try {
            resolve(isMethodName(method) ? (parseResult(method, result) as MethodResult<M>) : (result as MethodResult<M>));
          } catch (error) {
            reject(error as Error);
          }
        },
      });
      const session = this.byHost.get(hostId);
      if (session !== undefined && session.socket.readyState === WebSocket.OPEN) session.socket.send(frame);
    });
  }

  /** Sends a raw frame to an agent (malformed-input tests and protocol experiments). */
  sendRaw(hostId: string, data: string | Buffer, options: { binary?: boolean } = {}): void {
    const session = this.byHost.get(hostId);
    if (session === undefined) throw new V6Error("not_found", `agent ${hostId} is not connected`, { field: "hostId" });
    session.socket.send(data, { binary: options.binary ?? false });
  }

  /** Closes an agent's connection without a close frame (fault injection and operator use). */
  dropAgent(hostId: string): void {
    this.byHost.get(hostId)?.socket.terminate();
  }

  // ---------------------------------------------------------------- connections

  private onUpgrade(request: IncomingMessage, socket: Socket, head: Buffer): void {
    const refuse = (status: number, text: string) => {
      this.log?.info({ remote: socket.remoteAddress, status }, `refused a connection: ${text}`);
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    const tokens = this.options.tokens;
    if (tokens !== undefined && tokens.length > 0) {
      const header = request.headers.authorization ?? "";
      const presented = header.startsWith("Bearer ") ? header.slice(7) : "";
      if (!tokens.some((token) => sameSecret(token, presented))) {
        refuse(401, "Unauthorized");
        return;
      }
    }
    const offered = (request.headers["sec-websocket-protocol"] ?? "").split(",").map((protocol) => protocol.trim());
    if (!offered.includes(SUBPROTOCOL)) {
      refuse(400, `Bad Request (subprotocol ${SUBPROTOCOL} required)`);
      return;
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => this.onConnection(ws, request));
  }

  private onConnection(socket: WebSocket, request: IncomingMessage): void {
    const tlsSocket = request.socket as TLSSocket;
    const certificate = typeof tlsSocket.getPeerCertificate === "function" ? tlsSocket.getPeerCertificate() : undefined;
    const subject = certificate?.subject?.CN;
    const session: Session = {
      socket,
      hostId: undefined,
      lastHeard: Date.now(),
      remoteAddress: request.socket.remoteAddress,
      certificateSubject: Array.isArray(subject) ? subject.join(",") : subject,
    };
    this.sessions.add(session);
    socket.on("message", (data, isBinary) => {
      session.lastHeard = Date.now();
      this.onFrame(session, data as Buffer, isBinary);
    });
    socket.on("pong", () => {
      session.lastHeard = Date.now();
    });
    socket.on("error", (error) => this.log?.info({ err: error.message, host: session.hostId }, "agent connection error"));
    socket.on("close", (code) => {
      this.sessions.delete(session);
      if (session.hostId === undefined || this.byHost.get(session.hostId) !== session) return;
      this.byHost.delete(session.hostId);
      const info = this.infos.get(session.hostId);
      if (info !== undefined) info.connected = false;
      this.log?.info({ host: session.hostId, code }, "agent disconnected");
      this.emit("disconnected", { hostId: session.hostId, reason: `closed (${code})` });
    });
  }

  private checkLiveness(): void {
    const limit = this.options.silenceTimeoutMs ?? 30_000;
    for (const session of this.sessions) {
      if (Date.now() - session.lastHeard > limit) {
        this.log?.warn({ host: session.hostId }, "agent is silent; dropping its connection");
        session.socket.terminate();
      } else if (session.socket.readyState === WebSocket.OPEN) {
        session.socket.ping();
      }
    }
  }

  private onFrame(session: Session, data: Buffer, isBinary: boolean): void {
    const message = decodeFrame(data, isBinary, { maxBytes: this.maxMessageBytes });
    switch (message.kind) {
      case "invalid":
        session.socket.send(encodeError(message.id, message.error));
        return;
      case "notification":
        return;
      case "result":
      case "error": {
        const key = String(message.id);
        const call = this.pending.get(key);
        if (call === undefined || call.hostId !== session.hostId) {
          this.emit("unmatched", { hostId: session.hostId, frame: message });
          return;
        }
        this.pending.delete(key);
        clearTimeout(call.timer);
        if (message.kind === "result") call.resolve(message.result);
        else call.reject(fromRpcError(message.error));
        return;
      }
      case "request":
        this.onAgentRequest(session, message.id, message.method, message.params);
        return;
    }
  }

  private onAgentRequest(session: Session, id: RequestId, method: string, rawParams: unknown): void {
    const reply = (result: unknown) => session.socket.send(encodeResult(id, result));
    const fail = (error: ReturnType<typeof rpcError>) => session.socket.send(encodeError(id, error));
    if (!isMethodName(method) || METHODS[method].direction !== "agent-to-server") {
      fail(rpcError(RPC_ERRORS.methodNotFound, `method: unknown method ${JSON.stringify(method)}`, "method"));
      return;
    }
    if (method !== "agent.hello" && session.hostId === undefined) {
      fail(rpcError(RPC_ERRORS.invalidRequest, "method: agent.hello must be the first request", "method"));
      return;
    }
    let params: MethodParams<typeof method>;
    try {
      params = parseParams(method, rawParams);
    } catch (error) {
      fail(toRpcError(error));
      return;
    }
    const hostId = method === "agent.hello" ? (params as AgentHelloParams).hostId : (session.hostId as string);
    if (method === "agent.ping") {
      reply({ time: new Date().toISOString() });
      return;
    }
    const report = this.reports.add({ hostId, method: method as Report["method"], params });
    this.emit("report", report);
    if (method === "agent.hello") {
      reply(this.onHello(session, params as AgentHelloParams));
      return;
    }
    const info = this.infos.get(hostId);
    if (info !== undefined) info.lastSeen = new Date().toISOString();
    reply(method === "agent.heartbeat" ? { time: new Date().toISOString() } : {});
  }

  private onHello(session: Session, hello: AgentHelloParams): unknown {
    const previous = this.byHost.get(hello.hostId);
    if (previous !== undefined && previous !== session) {
      this.byHost.delete(hello.hostId);
      previous.socket.close(4000, "replaced by a newer connection");
    }
    session.hostId = hello.hostId;
    this.byHost.set(hello.hostId, session);
    const known = this.resumeTokens.get(hello.hostId);
    const resumed = known !== undefined && hello.resumeToken !== undefined && sameSecret(known, hello.resumeToken);
    const token = known ?? randomBytes(18).toString("base64url");
    this.resumeTokens.set(hello.hostId, token);
    const now = new Date().toISOString();
    const info: AgentInfo = {
      hostId: hello.hostId,
      hostname: hello.hostname,
      hypervisor: hello.hypervisor,
      versions: hello.versions,
      capabilities: hello.capabilities,
      inventory: hello.inventory,
      connected: true,
      connectedAt: now,
      lastSeen: now,
      remoteAddress: session.remoteAddress,
      certificateSubject: session.certificateSubject,
      pendingCommands: 0,
    };
    this.infos.set(hello.hostId, info);
    this.log?.info({ host: hello.hostId, resumed }, "agent connected");
    // Answer first, then re-send what the agent has not answered yet (same ids: no double execution).
    setImmediate(() => {
      for (const call of this.pending.values()) {
        if (call.hostId === hello.hostId && session.socket.readyState === WebSocket.OPEN) session.socket.send(call.frame);
      }
      this.emit("agent", this.snapshot(info));
      const waiters = this.agentWaiters.filter((waiter) => waiter.hostId === hello.hostId);
      this.agentWaiters = this.agentWaiters.filter((waiter) => waiter.hostId !== hello.hostId);
      for (const waiter of waiters) waiter.resolve(this.snapshot(info));
    });
    return { resumeToken: token, heartbeatIntervalMs: this.options.heartbeatIntervalMs ?? 10_000, resumed };
  }

  private snapshot(info: AgentInfo): AgentInfo {
    let pendingCommands = 0;
    for (const call of this.pending.values()) if (call.hostId === info.hostId) pendingCommands += 1;
    return { ...info, pendingCommands };
  }
}

function sameSecret(expected: string, presented: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}

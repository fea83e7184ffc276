import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import { WebSocket, WebSocketServer } from "ws";
import { isLoopbackHost } from "../channel/connection-options.js";
import { V6Error } from "../errors.js";
import {
  type IncomingRequest,
  type MethodParams,
  type MethodResult,
  parseParams,
  parseResult,
  RPC_ERRORS,
  RpcPeer,
  rpcError,
  type ServerMethod,
  SUBPROTOCOL,
  toRpcError,
} from "../protocol/index.js";
import { type Credentials, certificateHostNames, isLabToken, tokenHash } from "./agent-auth.js";
import { type AgentInfo, AgentRegistry } from "./agent-registry.js";
import { HelloHandler } from "./hello.js";
import { certificateRefusal, Listener } from "./listener.js";
import { type Report, ReportLog } from "./report-log.js";
import type { CallOptions, ManagementServerEvents, ManagementServerOptions } from "./server-options.js";
import type { Session } from "./session.js";

export type { AgentInfo } from "./agent-registry.js";
export type { CallOptions, ManagementServerEvents, ManagementServerOptions } from "./server-options.js";

/**
 * The reference management server (design section 2): accepts agents whose hostId is bound to
 * their credentials (./agent-auth.ts), keeps what they report in memory within byte budgets,
 * sends commands and awaits their results. A call outlives a connection: each host has one
 * JSON-RPC peer (src/protocol/peer.ts) that keeps its unanswered calls and sends them again,
 * same ids, when the agent is back; the agent answers from its journal if it already ran them.
 */
export class ManagementServer extends EventEmitter<ManagementServerEvents> {
  readonly reports: ReportLog;
  readonly registry: AgentRegistry;
  private readonly options: ManagementServerOptions;
  private readonly log: Logger | undefined;
  private readonly wss: WebSocketServer;
  private readonly listener: Listener;
  private readonly hello: HelloHandler;
  private readonly sessions = new Set<Session>();
  private readonly byHost = new Map<string, Session>();
  private readonly peers = new Map<string, RpcPeer>();
  private readonly idPrefix = randomBytes(6).toString("hex");
  private pingTimer: NodeJS.Timeout | undefined;
  private agentWaiters: { hostId: string; resolve: (info: AgentInfo) => void }[] = [];

  constructor(options: ManagementServerOptions = {}) {
    super();
    const host = options.host ?? "127.0.0.1";
    if (options.tls === undefined && !isLoopbackHost(host) && options.allowInsecure !== true) {
      throw new V6Error("invalid_argument", `listen: plain ws:// on ${host} needs TLS or the explicit insecure flag`, { field: "listen" });
    }
    const authenticated = options.tls?.ca !== undefined || options.hostTokens !== undefined || (options.tokens?.length ?? 0) > 0;
    if (!authenticated && options.unauthenticatedLoopback !== true) {
      throw new V6Error(
        "invalid_argument",
        "agents: no agent authentication configured (a client CA, per-host tokens or lab tokens); accepting agents without credentials needs the explicit loopback-only flag",
        { field: "agents" },
      );
    }
    if (!authenticated && !isLoopbackHost(host)) {
      throw new V6Error("invalid_argument", `listen: agents without credentials are accepted on loopback only, not on ${host}`, {
        field: "listen",
      });
    }
    this.options = options;
    this.log = options.logger?.child({ component: "mgmt" });
    this.reports = new ReportLog({ maxEntries: options.maxReports ?? 10_000, maxBytes: options.maxReportBytes ?? 64 * 1024 * 1024 });
    this.registry = new AgentRegistry({
      maxBytes: options.maxAgentBytes ?? 256 * 1024 * 1024,
      departedTtlMs: options.departedHostTtlMs ?? 3_600_000,
    });
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.maxMessageBytes * 4,
      perMessageDeflate: false,
      // Invalid UTF-8 is answered by the frame parser (-32700), not by closing the connection.
      skipUTF8Validation: true,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    this.listener = new Listener(
      {
        host,
        port: options.port ?? 0,
        tls: options.tls,
        maxConnections: options.maxConnections ?? 4096,
        handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
        log: this.log,
      },
      (request, socket, head) => this.onUpgrade(request, socket, head),
    );
    this.hello = new HelloHandler({
      registry: this.registry,
      reports: this.reports,
      byHost: this.byHost,
      peerFor: (hostId) => this.peerFor(hostId),
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 10_000,
      duplicateProbeMs: options.duplicateProbeMs ?? 2000,
      log: this.log,
      accepted: (session, info, report) => this.onAccepted(session, info, report),
    });
  }

  private get maxMessageBytes(): number {
    return this.options.maxMessageBytes ?? 1024 * 1024;
  }

  /** Starts listening; resolves with the URL agents connect to. */
  async start(): Promise<{ host: string; port: number; url: string }> {
    const address = await this.listener.listen();
    this.pingTimer = setInterval(() => this.checkLiveness(), this.options.pingIntervalMs ?? 5000);
    this.log?.info({ url: address.url }, "management server listening");
    return address;
  }

  /** Drops every agent connection and stops listening; pending calls are rejected. */
  async stop(): Promise<void> {
    clearInterval(this.pingTimer);
    for (const session of this.sessions) session.socket.terminate();
    for (const peer of this.peers.values()) peer.rejectAll(new V6Error("unavailable", "the management server stopped"));
    this.peers.clear();
    await this.listener.close();
  }

  agents(): AgentInfo[] {
    return this.registry.all().map((info) => this.snapshot(info));
  }

  agent(hostId: string): AgentInfo | undefined {
    const info = this.registry.get(hostId);
    return info === undefined ? undefined : this.snapshot(info);
  }

  /** Resolves when the agent is connected and has said hello. */
  waitForAgent(hostId: string, timeoutMs = 30_000): Promise<AgentInfo> {
    const info = this.registry.get(hostId);
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
  async call<M extends ServerMethod>(
    hostId: string,
    method: M,
    params: MethodParams<M> | unknown,
    options: CallOptions = {},
  ): Promise<MethodResult<M>> {
    const checked = options.validate === false ? params : parseParams(method, params);
    const result = await this.peerFor(hostId).request(method, checked, {
      id: options.id,
      timeoutMs: options.timeoutMs ?? this.options.commandTimeoutMs ?? 120_000,
    });
    return parseResult(method, result) as MethodResult<M>;
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

  /** Connections held now: every socket, and those still before their hello. */
  get connections(): { sessions: number; handshaking: number } {
    return { sessions: this.sessions.size, handshaking: this.listener.handshaking };
  }

  // ---------------------------------------------------------------- connections

  private onUpgrade(request: IncomingMessage, socket: Socket, head: Buffer): void {
    const refuse = (status: number, text: string) => {
      this.log?.warn({ remote: socket.remoteAddress, status }, `refused a connection: ${text}`);
      // The status text carries the reason, for the agent's log ("HTTP 403 client certificate refused: …").
      socket.end(`HTTP/1.1 ${status} ${text.replace(/[\r\n]/g, " ")}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    const credentials: Credentials = {};
    if (this.options.tls?.ca !== undefined) {
      const tlsSocket = socket as TLSSocket;
      if (!tlsSocket.authorized) {
        refuse(403, `client certificate refused: ${certificateRefusal(tlsSocket)}`);
        return;
      }
      const certificate = tlsSocket.getPeerCertificate();
      credentials.certificateNames = certificateHostNames(certificate);
      const cn = certificate.subject?.CN;
      credentials.certificateSubject = Array.isArray(cn) ? cn.join(",") : cn;
    }
    const hostTokens = this.options.hostTokens;
    const labTokens = this.options.tokens ?? [];
    if (hostTokens !== undefined || labTokens.length > 0) {
      const header = request.headers.authorization ?? "";
      const presented = header.startsWith("Bearer ") ? header.slice(7) : "";
      const tokenHost = presented === "" ? undefined : hostTokens?.get(tokenHash(presented));
      if (tokenHost !== undefined) credentials.tokenHost = tokenHost;
      else if (presented !== "" && isLabToken(labTokens, presented)) credentials.labToken = true;
      else {
        refuse(401, "Unauthorized");
        return;
      }
    }
    const offered = (request.headers["sec-websocket-protocol"] ?? "").split(",").map((protocol) => protocol.trim());
    if (!offered.includes(SUBPROTOCOL)) {
      refuse(400, `Bad Request (subprotocol ${SUBPROTOCOL} required)`);
      return;
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => this.onConnection(ws, request, credentials));
  }

  private onConnection(socket: WebSocket, request: IncomingMessage, credentials: Credentials): void {
    const session: Session = {
      socket,
      transport: { send: (frame) => socket.readyState === WebSocket.OPEN && socket.send(frame) },
      peer: undefined as unknown as RpcPeer,
      hostId: undefined,
      credentials,
      lastHeard: Date.now(),
      remoteAddress: request.socket.remoteAddress,
      rawSocket: request.socket,
    };
    // Until its hello is accepted, a connection has a peer of its own (no calls of any host).
    session.peer = this.newPeer(undefined, (incoming) => this.onAgentRequest(session, session.peer, incoming));
    session.peer.attach(session.transport);
    this.sessions.add(session);
    socket.on("message", (data, isBinary) => {
      session.lastHeard = Date.now();
      session.peer.receive(data as Buffer, isBinary);
    });
    socket.on("pong", () => {
      session.lastHeard = Date.now();
    });
    socket.on("error", (error) => this.log?.info({ err: error.message, host: session.hostId }, "agent connection error"));
    socket.on("close", (code) => {
      this.sessions.delete(session);
      if (session.hostId === undefined || this.byHost.get(session.hostId) !== session) return;
      this.byHost.delete(session.hostId);
      this.peers.get(session.hostId)?.detach(`closed (${code})`);
      this.registry.departed(session.hostId);
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
    const forgotten = this.registry.prune((hostId) => this.byHost.has(hostId) || (this.peers.get(hostId)?.pendingCount ?? 0) > 0);
    for (const hostId of forgotten) this.peers.delete(hostId);
    for (const [hostId, peer] of this.peers) {
      if (peer.pendingCount === 0 && !peer.attached && this.registry.get(hostId) === undefined) this.peers.delete(hostId);
    }
    if (forgotten.length > 0) this.log?.info({ hosts: forgotten.length }, "forgot departed hosts");
  }

  private newPeer(hostId: string | undefined, onRequest: (request: IncomingRequest) => void): RpcPeer {
    return new RpcPeer({
      idPrefix: this.idPrefix,
      serves: "agent-to-server",
      maxMessageBytes: this.maxMessageBytes,
      resendOnAttach: true,
      remoteName: hostId ?? "the agent",
      onRequest,
      onUnmatched: (message) => this.emit("unmatched", { hostId, frame: message }),
    });
  }

  /** The host's peer: its calls, kept across connections. */
  private peerFor(hostId: string): RpcPeer {
    let peer = this.peers.get(hostId);
    if (peer === undefined) {
      const created = this.newPeer(hostId, (incoming) => {
        const session = this.byHost.get(hostId);
        if (session !== undefined) this.onAgentRequest(session, created, incoming);
      });
      peer = created;
      this.peers.set(hostId, peer);
    }
    return peer;
  }

  private onAgentRequest(session: Session, peer: RpcPeer, request: IncomingRequest): void {
    const { id } = request;
    const method = request.method as "agent.hello" | "agent.heartbeat" | "agent.ping" | "vif.report";
    if (method === "agent.hello") {
      this.hello.handle(session, peer, request).catch((error: unknown) => this.log?.error({ err: error }, "agent.hello failed"));
      return;
    }
    const hostId = session.hostId;
    if (hostId === undefined) {
      peer.respondError(id, rpcError(RPC_ERRORS.invalidRequest, "method: agent.hello must be the first request", "method"));
      return;
    }
    let params: MethodParams<typeof method>;
    try {
      params = parseParams(method, request.params);
    } catch (error) {
      peer.respondError(id, toRpcError(error));
      return;
    }
    if (method === "agent.ping") {
      peer.respond(id, { time: new Date().toISOString() });
      return;
    }
    this.emit("report", this.reports.add({ hostId, method, params }, request.size));
    this.registry.touch(hostId);
    peer.respond(id, method === "agent.heartbeat" ? { time: new Date().toISOString() } : {});
  }

  /** A hello was accepted (./hello.ts): the session now speaks for its host. */
  private onAccepted(session: Session, info: AgentInfo, report: Report): void {
    this.listener.release(session.rawSocket);
    this.emit("report", report);
    this.emit("agent", this.snapshot(info));
    const waiters = this.agentWaiters.filter((waiter) => waiter.hostId === info.hostId);
    this.agentWaiters = this.agentWaiters.filter((waiter) => waiter.hostId !== info.hostId);
    for (const waiter of waiters) waiter.resolve(this.snapshot(info));
  }

  private snapshot(info: AgentInfo): AgentInfo {
    return { ...info, pendingCommands: this.peers.get(info.hostId)?.pendingCount ?? 0 };
  }
}

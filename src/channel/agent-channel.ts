import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import WebSocket from "ws";
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from "../backoff.js";
import { V6Error } from "../errors.js";
import {
  type AgentHeartbeatParams,
  type AgentHelloParams,
  type AgentHelloResult,
  decodeFrame,
  encodeError,
  encodeRequest,
  encodeResult,
  fromRpcError,
  type Incoming,
  isMethodName,
  METHODS,
  type MethodParams,
  parseParams,
  parseResult,
  type RequestId,
  RPC_ERRORS,
  rpcError,
  type ServerMethod,
  SUBPROTOCOL,
  toRpcError,
  type VifReport,
} from "../protocol/index.js";
import { CommandScheduler } from "./command-scheduler.js";
import { type ChannelTls, checkServerUrl, clientOptions } from "./connection-options.js";
import { defaultResourceKey } from "./resource-key.js";
import { ResultStore, type StoredResponse } from "./result-store.js";

/** What a command handler gets besides its params. */
export interface CommandContext {
  id: RequestId;
  method: ServerMethod;
  /** Aborted when the per-command timeout expires or the channel stops. */
  signal: AbortSignal;
}

/** Params as a handler receives them: validated and canonicalised (see src/protocol/params.ts). */
export type CommandHandler = <M extends ServerMethod>(method: M, params: MethodParams<M>, context: CommandContext) => Promise<unknown>;

export interface ChannelLimits {
  /** Largest frame accepted (bigger ones: -32600); the transport closes with 1009 beyond 4×. Default 1 MiB. */
  maxMessageBytes: number;
  /** Commands run at once. Default 8. */
  maxConcurrentCommands: number;
  /** Commands waiting for a slot; beyond this, -32003 busy. Default 256. */
  maxQueuedCommands: number;
  /** Per-command timeout; the answer is then -32004 timeout. Default 120 s. */
  commandTimeoutMs: number;
  /** Finished results kept for replay and de-duplication. Default 1000. */
  maxStoredResults: number;
  /** Reports (vif.report) waiting for the server's acknowledgement; the oldest is dropped beyond. Default 1000. */
  maxPendingReports: number;
}

export interface ChannelLiveness {
  /** WebSocket ping period. Default 5 s. */
  pingIntervalMs: number;
  /** A peer heard from (any frame, pong included) less recently than this is dropped. Default 15 s. */
  silenceTimeoutMs: number;
  /** Handshake plus agent.hello answer. Default 10 s. */
  connectTimeoutMs: number;
}

export interface AgentChannelOptions {
  /** Management servers, tried in turn (wss://…, or ws:// on loopback). */
  servers: readonly string[];
  tls?: ChannelTls;
  /** Bearer token sent in the upgrade request. */
  token?: string;
  /** Allow ws:// to non-loopback hosts. Never in production. */
  allowInsecure?: boolean;
  /** Host facts and the full inventory, asked on every (re)connection. */
  hello: () => Promise<Omit<AgentHelloParams, "resumeToken">>;
  /** VM and VIF states for agent.heartbeat. Without it, heartbeats carry empty lists. */
  heartbeat?: () => Promise<AgentHeartbeatParams>;
  handle: CommandHandler;
  /** Resources a command touches (same key ⇒ never concurrent; `*` conflicts with all). Default: defaultResourceKey. */
  resourceKey?: (method: ServerMethod, params: unknown) => string | readonly string[] | undefined;
  /** Journal of command results (outbox + duplicate filter), kept across agent restarts. */
  outboxPath?: string;
  limits?: Partial<ChannelLimits>;
  liveness?: Partial<ChannelLiveness>;
  backoff?: Partial<BackoffOptions>;
  /**
   * The longest interval between heartbeats. The server's hello answer may ask for a shorter
   * one, never a longer one: the agent's own liveness timeout is set against this. Default 10 s.
   */
  heartbeatIntervalMs?: number;
  logger?: Logger;
}

const DEFAULT_HEARTBEAT_MS = 10_000;

export type ChannelState = "idle" | "connecting" | "connected" | "disconnected" | "stopping" | "stopped";

export interface ChannelEvents {
  state: [state: ChannelState];
  connected: [info: { server: string; resumed: boolean; delivered: number }];
  disconnected: [info: { server: string; reason: string }];
}

interface PendingRequest {
  resolve: (result: unknown) => void;
  reject: (error: Error) => void;
}

interface QueuedReport {
  method: "vif.report";
  params: VifReport;
  id: string | undefined;
  resolve: () => void;
  reject: (error: Error) => void;
}

const DEFAULT_LIMITS: ChannelLimits = {
  maxMessageBytes: 1024 * 1024,
  maxConcurrentCommands: 8,
  maxQueuedCommands: 256,
  commandTimeoutMs: 120_000,
  maxStoredResults: 1000,
  maxPendingReports: 1000,
};

/** How long responses collect before one agent.ping confirms them all. */
const CONFIRM_DELAY_MS = 25;

const DEFAULT_LIVENESS: ChannelLiveness = { pingIntervalMs: 5000, silenceTimeoutMs: 15_000, connectTimeoutMs: 10_000 };

/**
 * The agent's end of the management channel (design section 2). It keeps one connection to one
 * of the configured servers, introduces itself with agent.hello (resume token, full inventory),
 * runs the server's commands through the handler with the limits above, and makes sure every
 * command gets exactly one answer: results are journalled before they are sent, re-sent after a
 * reconnect when they could not be, and a repeated id is answered from the journal.
 */
export class AgentChannel extends EventEmitter<ChannelEvents> {
  private readonly options: AgentChannelOptions;
  private readonly limits: ChannelLimits;
  private readonly liveness: ChannelLiveness;
  private readonly backoffOptions: BackoffOptions;
  private readonly store: ResultStore;
  private readonly scheduler: CommandScheduler;
  private readonly log: Logger | undefined;
  private readonly pending = new Map<string, PendingRequest>();
  private readonly reports: QueuedReport[] = [];
  private readonly inFlight = new Set<AbortController>();
  /** Responses written to the current connection but not yet known to have arrived. */
  private unconfirmed: RequestId[] = [];
  private socket: WebSocket | undefined;
  private ready = false;
  private stateValue: ChannelState = "idle";
  private serverIndex = 0;
  private attempt = 0;
  private nextRequestId = 0;
  private heartbeatMs: number;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private livenessTimer: NodeJS.Timeout | undefined;
  private lastHeard = 0;
  /** The socket the liveness check dropped, so its close is reported as silence. */
  private silenceDrop: WebSocket | undefined;
  private stopping = false;

  constructor(options: AgentChannelOptions) {
    super();
    if (options.servers.length === 0)
      throw new V6Error("invalid_argument", "servers: at least one management server is needed", { field: "servers" });
    options.servers.forEach((url, index) => {
      checkServerUrl(url, options, `servers[${index}]`);
    });
    this.options = options;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.liveness = { ...DEFAULT_LIVENESS, ...options.liveness };
    this.backoffOptions = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.heartbeatMs = options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_MS;
    this.log = options.logger?.child({ component: "channel" });
    const storeOptions: ConstructorParameters<typeof ResultStore>[0] = { maxEntries: this.limits.maxStoredResults };
    if (options.outboxPath !== undefined) storeOptions.path = options.outboxPath;
    if (this.log !== undefined) storeOptions.logger = this.log;
    this.store = new ResultStore(storeOptions);
    this.scheduler = new CommandScheduler(this.limits.maxConcurrentCommands, this.limits.maxQueuedCommands);
  }

  get state(): ChannelState {
    return this.stateValue;
  }

  /** True between the server's hello answer and the next disconnect. */
  get connected(): boolean {
    return this.ready;
  }

  /** Results waiting to be delivered (finished while disconnected). */
  get outboxSize(): number {
    return this.store.unsent().length;
  }

  start(): void {
    if (this.stateValue !== "idle") return;
    this.connect();
  }

  /**
   * Stops taking commands, lets the running ones finish for up to `graceMs` (default 30 s;
   * their results are sent if the connection is up, kept in the outbox otherwise), then closes
   * the connection.
   */
  async stop(options: { graceMs?: number } = {}): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.setState("stopping");
    clearTimeout(this.reconnectTimer);
    const graceMs = options.graceMs ?? 30_000;
    let graceTimer: NodeJS.Timeout | undefined;
    const expired = new Promise<"expired">((resolve) => {
      graceTimer = setTimeout(() => resolve("expired"), graceMs);
    });
    if ((await Promise.race([this.scheduler.idle(), expired])) === "expired") {
      // Handlers still running are told to give up; after a restart they answer -32010 interrupted.
      for (const controller of this.inFlight) controller.abort(new V6Error("unavailable", "the agent is stopping"));
      this.log?.warn({ running: this.inFlight.size, graceMs }, "stopped with commands still running");
    }
    clearTimeout(graceTimer);
    for (const report of this.reports.splice(0))
      report.reject(new V6Error("unavailable", "the channel stopped before the report was acknowledged"));
    this.teardown("agent stopping", 1001);
    this.store.close();
    this.setState("stopped");
  }

  /**
   * Sends a vif.report; resolves when the server acknowledged it. Queued while disconnected and
   * re-sent after a reconnect until acknowledged; the queue is bounded (the oldest report is
   * dropped and its promise rejected; the next agent.hello carries the full inventory anyway).
   */
  report(params: VifReport): Promise<void> {
    const checked = parseParams("vif.report", params);
    return new Promise((resolve, reject) => {
      if (this.stopping) {
        reject(new V6Error("unavailable", "the channel is stopping"));
        return;
      }
      const entry: QueuedReport = { method: "vif.report", params: checked, id: undefined, resolve, reject };
      this.reports.push(entry);
      if (this.reports.length > this.limits.maxPendingReports) {
        const dropped = this.reports.shift() as QueuedReport;
        if (dropped.id !== undefined) this.pending.delete(dropped.id);
        this.log?.warn({ mac: dropped.params.mac }, "report queue full: dropped the oldest vif.report");
        dropped.reject(new V6Error("unavailable", "report queue full: dropped before the server acknowledged it"));
      }
      if (this.ready) this.sendReport(entry);
    });
  }

  // ---------------------------------------------------------------- connection

  private connect(): void {
    if (this.stopping) return;
    const server = this.options.servers[this.serverIndex % this.options.servers.length] as string;
    this.setState("connecting");
    const socket = new WebSocket(
      server,
      SUBPROTOCOL,
      clientOptions(this.options, { maxPayload: this.limits.maxMessageBytes * 4, handshakeTimeoutMs: this.liveness.connectTimeoutMs }),
    );
    this.socket = socket;
    this.lastHeard = Date.now();
    let reason = "closed";
    const helloTimer = setTimeout(() => {
      reason = "no answer to agent.hello in time";
      socket.terminate();
    }, this.liveness.connectTimeoutMs);
    socket.on("open", () => {
      if (socket.protocol !== SUBPROTOCOL) {
        reason = `server did not accept subprotocol ${SUBPROTOCOL}`;
        socket.close(1002, "subprotocol");
        return;
      }
      this.startLiveness(socket);
      this.introduce(socket, server).then(
        () => clearTimeout(helloTimer),
        (error: unknown) => {
          clearTimeout(helloTimer);
          reason = `agent.hello failed: ${(error as Error).message}`;
          socket.terminate();
        },
      );
    });
    socket.on("message", (data, isBinary) => {
      this.lastHeard = Date.now();
      this.onFrame(socket, data as Buffer, isBinary);
    });
    socket.on("pong", () => {
      this.lastHeard = Date.now();
    });
    socket.on("unexpected-response", (_request, response) => {
      reason = `server refused the connection: HTTP ${response.statusCode}`;
      socket.terminate();
    });
    socket.on("error", (error) => {
      // Keep the first, most specific reason (terminate() after a refusal raises its own error).
      if (reason === "closed") reason = error.message;
    });
    socket.on("close", (code) => {
      clearTimeout(helloTimer);
      if (this.silenceDrop === socket) reason = `peer silent for more than ${this.liveness.silenceTimeoutMs} ms`;
      if (this.socket === socket) this.onDisconnected(server, reason === "closed" ? `closed (${code})` : reason);
    });
  }

  private async introduce(socket: WebSocket, server: string): Promise<void> {
    const facts = await this.options.hello();
    const params: AgentHelloParams = { ...facts };
    const token = this.store.resumeToken;
    if (token !== undefined) params.resumeToken = token;
    const answer = parseResult(
      "agent.hello",
      await this.request(socket, "agent.hello", parseParams("agent.hello", params)),
    ) as AgentHelloResult;
    if (this.socket !== socket) return;
    this.store.resumeToken = answer.resumeToken;
    this.heartbeatMs = Math.min(answer.heartbeatIntervalMs, this.options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_MS);
    this.ready = true;
    this.attempt = 0;
    // Results of commands that finished while we were away, then unacknowledged reports.
    const unsent = this.store.unsent();
    for (const entry of unsent) this.sendResponse(entry.id, entry.response as StoredResponse);
    for (const report of this.reports) this.sendReport(report);
    this.startHeartbeat(socket);
    this.setState("connected");
    this.log?.info({ server, resumed: answer.resumed, delivered: unsent.length }, "connected to the management server");
    this.emit("connected", { server, resumed: answer.resumed, delivered: unsent.length });
  }

  private onDisconnected(server: string, reason: string): void {
    this.socket = undefined;
    this.ready = false;
    this.unconfirmed = [];
    clearInterval(this.livenessTimer);
    clearTimeout(this.heartbeatTimer);
    for (const [id, request] of this.pending) {
      this.pending.delete(id);
      request.reject(new V6Error("unavailable", `connection lost: ${reason}`));
    }
    this.log?.warn({ server, reason }, "disconnected from the management server");
    this.emit("disconnected", { server, reason });
    if (this.stopping) return;
    this.setState("disconnected");
    // Next server in the list; the delay grows with consecutive failures.
    this.serverIndex += 1;
    const delay = backoffDelay(this.attempt, this.backoffOptions);
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private teardown(reason: string, code: number): void {
    const socket = this.socket;
    this.socket = undefined;
    this.ready = false;
    this.unconfirmed = [];
    clearInterval(this.livenessTimer);
    clearTimeout(this.heartbeatTimer);
    if (socket !== undefined) {
      if (socket.readyState === WebSocket.OPEN) socket.close(code, reason);
      else socket.terminate();
    }
  }

  /** Liveness from answers: a peer not heard from (frames or pongs) within the timeout is dropped. */
  private startLiveness(socket: WebSocket): void {
    clearInterval(this.livenessTimer);
    this.livenessTimer = setInterval(() => {
      if (Date.now() - this.lastHeard > this.liveness.silenceTimeoutMs) {
        const silentMs = Date.now() - this.lastHeard;
        this.log?.warn({ silentMs }, "management server is silent; dropping the connection");
        this.silenceDrop = socket;
        socket.terminate();
        return;
      }
      if (socket.readyState === WebSocket.OPEN) socket.ping();
    }, this.liveness.pingIntervalMs);
  }

  private startHeartbeat(socket: WebSocket): void {
    const beat = async () => {
      if (this.socket !== socket || !this.ready) return;
      try {
        await this.beat(socket);
      } catch (error) {
        this.log?.warn({ err: error }, "heartbeat failed");
      }
      if (this.socket === socket && this.ready) this.heartbeatTimer = setTimeout(beat, this.heartbeatMs);
    };
    this.heartbeatTimer = setTimeout(beat, this.heartbeatMs);
  }

  private request(socket: WebSocket, method: string, params: unknown): Promise<unknown> {
    const id = `agent-${++this.nextRequestId}`;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      socket.send(encodeRequest(id, method, params));
    });
  }

  private sendReport(report: QueuedReport): void {
    const socket = this.socket;
    if (socket === undefined || !this.ready) return;
    const id = `agent-${++this.nextRequestId}`;
    report.id = id;
    this.pending.set(id, {
      resolve: () => {
        const index = this.reports.indexOf(report);
        if (index >= 0) this.reports.splice(index, 1);
        report.resolve();
      },
      // A lost connection leaves the report queued for the next one.
      reject: () => {
        report.id = undefined;
      },
    });
    socket.send(encodeRequest(id, report.method, report.params));
  }

  // ---------------------------------------------------------------- incoming frames

  private onFrame(socket: WebSocket, data: Buffer, isBinary: boolean): void {
    const message: Incoming = decodeFrame(data, isBinary, { maxBytes: this.limits.maxMessageBytes });
    switch (message.kind) {
      case "request":
        this.onCommand(socket, message.id, message.method, message.params);
        return;
      case "notification":
        // v6agent/1 defines no server→agent notifications; JSON-RPC forbids answering one.
        this.log?.debug({ method: message.method }, "ignored a notification");
        return;
      case "result":
      case "error": {
        const key = String(message.id);
        const pending = this.pending.get(key);
        if (pending === undefined) {
          this.log?.debug({ id: message.id }, "answer to an unknown request");
          return;
        }
        this.pending.delete(key);
        if (message.kind === "result") pending.resolve(message.result);
        else pending.reject(fromRpcError(message.error));
        return;
      }
      case "invalid":
        this.log?.warn({ error: message.error }, "malformed frame from the management server");
        socket.send(encodeError(message.id, message.error));
        return;
    }
  }

  private onCommand(socket: WebSocket, id: RequestId, method: string, rawParams: unknown): void {
    if (!isMethodName(method) || METHODS[method].direction !== "server-to-agent") {
      socket.send(encodeError(id, rpcError(RPC_ERRORS.methodNotFound, `method: unknown method ${JSON.stringify(method)}`, "method")));
      return;
    }
    const known = this.store.get(id);
    if (known !== undefined) {
      // Seen before: answer from the journal (or, while it runs, let its completion answer).
      if (known.state === "done") this.sendResponse(id, known.response as StoredResponse);
      this.log?.info({ cmd: id, method }, "repeated command id answered from the journal, not executed again");
      return;
    }
    if (this.stopping) {
      socket.send(
        encodeError(id, rpcError(RPC_ERRORS.unavailable, "the agent is stopping; retry with the same id", undefined, "unavailable")),
      );
      return;
    }
    const serverMethod = method as ServerMethod;
    let params: MethodParams<ServerMethod>;
    try {
      params = parseParams(serverMethod, rawParams);
    } catch (error) {
      socket.send(encodeError(id, toRpcError(error)));
      return;
    }
    const keys = this.resourceKeys(serverMethod, params);
    const accepted = this.scheduler.submit(keys, () => this.execute(id, serverMethod, params));
    if (!accepted) {
      socket.send(
        encodeError(
          id,
          rpcError(
            RPC_ERRORS.busy,
            `busy: ${this.limits.maxQueuedCommands} commands already queued; retry with the same id`,
            undefined,
            "busy",
          ),
        ),
      );
      return;
    }
    // Journalled on acceptance: a duplicate arriving while it waits is recognised.
    this.store.begin(id, method);
  }

  private resourceKeys(method: ServerMethod, params: unknown): readonly string[] {
    const key = (this.options.resourceKey ?? defaultResourceKey)(method, params);
    if (key === undefined) return [];
    return typeof key === "string" ? [key] : key;
  }

  /** Runs one command; resolves when the handler has settled (the scheduler holds its resources until then). */
  private async execute(id: RequestId, method: ServerMethod, params: MethodParams<ServerMethod>): Promise<void> {
    const controller = new AbortController();
    this.inFlight.add(controller);
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), this.limits.commandTimeoutMs);
    });
    const work = Promise.resolve().then(() => this.options.handle(method, params, { id, method, signal: controller.signal }));
    try {
      const outcome = await Promise.race([work.then((result) => ({ result })), timedOut]);
      if (outcome === "timeout") {
        controller.abort(new V6Error("timeout", `${method} exceeded ${this.limits.commandTimeoutMs} ms`));
        this.finish(id, {
          error: rpcError(
            RPC_ERRORS.timeout,
            `${method} exceeded the per-command timeout of ${this.limits.commandTimeoutMs} ms`,
            undefined,
            "timeout",
          ),
        });
        // Keep the resource until the handler really stops, so a later command cannot overlap it.
        await work.catch(() => undefined);
        this.log?.warn({ cmd: id, method, ms: Math.round(performance.now() - started) }, "command finished after its timeout");
        return;
      }
      this.finish(id, { result: outcome.result === undefined ? null : outcome.result });
      this.log?.debug({ cmd: id, method, ms: Math.round(performance.now() - started) }, "command done");
    } catch (error) {
      this.finish(id, { error: toRpcError(error) });
      this.log?.info({ cmd: id, method, err: error }, "command failed");
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(controller);
    }
  }

  private finish(id: RequestId, response: StoredResponse): void {
    this.store.complete(id, response);
    if (this.ready) this.sendResponse(id, response);
  }

  private sendResponse(id: RequestId, response: StoredResponse): void {
    const socket = this.socket;
    if (socket === undefined || !this.ready || socket.readyState !== WebSocket.OPEN) return;
    const frame = "result" in response ? encodeResult(id, response.result) : encodeError(id, response.error);
    socket.send(frame);
    // A write is not a delivery: the connection may already be dead. The answer to our next
    // request proves the server read every frame before it (one ordered stream), so only then
    // is the response confirmed; unconfirmed ones are sent again after the next hello.
    this.unconfirmed.push(id);
    // One confirmation per burst, not per result: it costs a round trip.
    if (this.unconfirmed.length === 1) setTimeout(() => this.confirmDeliveries(socket), CONFIRM_DELAY_MS);
  }

  private confirmDeliveries(socket: WebSocket): void {
    if (this.socket !== socket || !this.ready || this.unconfirmed.length === 0) return;
    const batch = this.unconfirmed;
    this.unconfirmed = [];
    this.request(socket, "agent.ping", {}).then(
      () => {
        for (const id of batch) this.store.markSent(id);
      },
      () => undefined,
    );
  }

  /** One agent.heartbeat round trip. */
  private async beat(socket: WebSocket): Promise<void> {
    const params = this.options.heartbeat ? await this.options.heartbeat() : { vms: [], vifs: [] };
    await this.request(socket, "agent.heartbeat", parseParams("agent.heartbeat", params));
  }

  private setState(state: ChannelState): void {
    if (this.stateValue === state) return;
    this.stateValue = state;
    this.emit("state", state);
  }
}

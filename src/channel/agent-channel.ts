import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from "../backoff.js";
import { V6Error } from "../errors.js";
import { type AgentHelloParams, type AgentHelloResult, parseParams, parseResult, RpcPeer, type VifReport } from "../protocol/index.js";
import {
  type AgentChannelOptions,
  type ChannelEvents,
  type ChannelLimits,
  type ChannelLiveness,
  type ChannelState,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_LIMITS,
  DEFAULT_LIVENESS,
} from "./channel-options.js";
import { CommandRunner } from "./command-runner.js";
import { Connection } from "./connection.js";
import { checkServerUrl } from "./connection-options.js";
import { Delivery } from "./delivery.js";
import { ResultStore } from "./result-store.js";

export type {
  AgentChannelOptions,
  ChannelEvents,
  ChannelLimits,
  ChannelLiveness,
  ChannelState,
  CommandContext,
  CommandHandler,
} from "./channel-options.js";

/**
 * The agent's end of the management channel (design section 2). It keeps one connection to one
 * of the configured servers, introduces itself with agent.hello (resume token, full inventory),
 * runs the server's commands through the handler with the limits above, and makes sure every
 * command gets exactly one answer: results are journalled before they are sent, re-sent after a
 * reconnect when they could not be, and a repeated id is answered from the journal.
 *
 * The parts: ./connection.ts (one WebSocket and its liveness), the shared JSON-RPC peer
 * (src/protocol/peer.ts), ./command-runner.ts (commands to journalled responses),
 * ./delivery.ts (responses and reports until confirmed); this class connects, says hello,
 * heartbeats and reconnects.
 */
export class AgentChannel extends EventEmitter<ChannelEvents> {
  private readonly options: AgentChannelOptions;
  private readonly limits: ChannelLimits;
  private readonly liveness: ChannelLiveness;
  private readonly backoffOptions: BackoffOptions;
  private readonly store: ResultStore;
  private readonly peer: RpcPeer;
  private readonly runner: CommandRunner;
  private readonly delivery: Delivery;
  private readonly log: Logger | undefined;
  private connection: Connection | undefined;
  private ready = false;
  private stateValue: ChannelState = "idle";
  private serverIndex = 0;
  private attempt = 0;
  private heartbeatMs: number;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private stopping = false;

  /** Throws a V6Error for a bad server URL or an unusable journal path. */
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
    this.store =
      options.journal ?? new ResultStore({ path: options.outboxPath, maxEntries: this.limits.maxStoredResults, logger: this.log });
    this.delivery = new Delivery(this.store, this.limits.maxPendingReports, this.log);
    this.peer = new RpcPeer({
      idPrefix: "agent",
      serves: "server-to-agent",
      maxMessageBytes: this.limits.maxMessageBytes,
      resendOnAttach: false,
      remoteName: "the management server",
      onRequest: (request) => this.runner.receive(request),
      onNotification: (method) => this.log?.debug({ method }, "ignored a notification"),
      onUnmatched: (message) => this.log?.debug({ id: "id" in message ? message.id : null }, "answer to an unknown request"),
      onInvalid: (error) => this.log?.warn({ error }, "malformed frame from the management server"),
    });
    this.runner = new CommandRunner({
      store: this.store,
      limits: this.limits,
      handle: options.handle,
      resourceKey: options.resourceKey,
      deliver: (id, response) => this.delivery.respond(id, response),
      refuse: (id, error) => this.peer.respondError(id, error),
      log: this.log,
    });
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
    await this.runner.stop(options.graceMs ?? 30_000);
    this.delivery.rejectReports("the channel stopped before the report was acknowledged");
    const connection = this.connection;
    this.disconnectParts("agent stopping");
    connection?.close(1001, "agent stopping");
    this.store.close();
    this.setState("stopped");
  }

  /**
   * Sends a vif.report; resolves when the server acknowledged it. Queued while disconnected and
   * re-sent after a reconnect until acknowledged (see ./delivery.ts for the bound).
   */
  report(params: VifReport): Promise<void> {
    const checked = parseParams("vif.report", params);
    if (this.stopping) return Promise.reject(new V6Error("unavailable", "the channel is stopping"));
    return this.delivery.report(checked);
  }

  // ---------------------------------------------------------------- connection

  private connect(): void {
    if (this.stopping) return;
    const server = this.options.servers[this.serverIndex % this.options.servers.length] as string;
    this.setState("connecting");
    const connection: Connection = new Connection(
      server,
      this.options,
      { maxMessageBytes: this.limits.maxMessageBytes, liveness: this.liveness },
      {
        open: () => {
          this.peer.attach(connection);
          this.introduce(connection, server).catch((error: unknown) => {
            connection.terminate(`agent.hello failed: ${(error as Error).message}`);
          });
        },
        frame: (data, isBinary) => {
          if (this.connection === connection) this.peer.receive(data, isBinary);
        },
        closed: (reason) => {
          if (this.connection === connection) this.onDisconnected(server, reason);
        },
      },
      this.log,
    );
    this.connection = connection;
  }

  private async introduce(connection: Connection, server: string): Promise<void> {
    const facts = await this.options.hello();
    const params: AgentHelloParams = { ...facts };
    const token = this.store.resumeToken;
    if (token !== undefined) params.resumeToken = token;
    if (this.store.damaged) params.journalDamaged = true;
    const raw = await this.peer.request("agent.hello", parseParams("agent.hello", params), {
      // Before the commands that follow the answer are dispatched: they are new ids once acknowledged.
      onResult: (result) => {
        if ((result as Partial<AgentHelloResult> | null)?.journalDamageAcknowledged === true && this.connection === connection) {
          this.store.acknowledgeDamage();
        }
      },
    });
    const answer = parseResult("agent.hello", raw) as AgentHelloResult;
    if (this.connection !== connection) return;
    connection.helloAnswered();
    this.store.resumeToken = answer.resumeToken;
    this.heartbeatMs = Math.min(answer.heartbeatIntervalMs, this.options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_MS);
    this.ready = true;
    this.attempt = 0;
    // Results of commands that finished while we were away, then unacknowledged reports.
    const delivered = this.delivery.attach({
      respond: (id, response) =>
        "result" in response ? this.peer.respond(id, response.result) : this.peer.respondError(id, response.error),
      ping: () => this.peer.request("agent.ping", {}),
      report: (report) => this.peer.request("vif.report", report),
    });
    this.startHeartbeat(connection);
    this.setState("connected");
    this.log?.info({ server, resumed: answer.resumed, delivered }, "connected to the management server");
    this.emit("connected", { server, resumed: answer.resumed, delivered });
  }

  /** The connection's parts stop: no more sends, pending requests fail, timers end. */
  private disconnectParts(reason: string): void {
    this.connection = undefined;
    this.ready = false;
    clearTimeout(this.heartbeatTimer);
    this.delivery.detach();
    this.peer.detach(reason);
  }

  private onDisconnected(server: string, reason: string): void {
    this.disconnectParts(reason);
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

  private startHeartbeat(connection: Connection): void {
    const beat = async () => {
      if (this.connection !== connection || !this.ready) return;
      try {
        const params = this.options.heartbeat ? await this.options.heartbeat() : { vms: [], vifs: [] };
        await this.peer.request("agent.heartbeat", parseParams("agent.heartbeat", params));
      } catch (error) {
        this.log?.warn({ err: error }, "heartbeat failed");
      }
      if (this.connection === connection && this.ready) this.heartbeatTimer = setTimeout(beat, this.heartbeatMs);
    };
    this.heartbeatTimer = setTimeout(beat, this.heartbeatMs);
  }

  private setState(state: ChannelState): void {
    if (this.stateValue === state) return;
    this.stateValue = state;
    this.emit("state", state);
  }
}

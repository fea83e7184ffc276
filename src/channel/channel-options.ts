import type { Logger } from "pino";
import type { BackoffOptions } from "../backoff.js";
import type { AgentHeartbeatParams, AgentHelloParams, MethodParams, RequestId, ServerMethod } from "../protocol/index.js";
import type { ChannelTls } from "./connection-options.js";
import type { ResultStore } from "./result-store.js";

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
  hello: () => Promise<Omit<AgentHelloParams, "resumeToken" | "journalDamaged">>;
  /** VM and VIF states for agent.heartbeat. Without it, heartbeats carry empty lists. */
  heartbeat?: () => Promise<AgentHeartbeatParams>;
  handle: CommandHandler;
  /** Resources a command touches (same key ⇒ never concurrent; `*` conflicts with all). Default: defaultResourceKey. */
  resourceKey?: (method: ServerMethod, params: unknown) => string | readonly string[] | undefined;
  /** Journal of command results (outbox + duplicate filter), kept across agent restarts. */
  outboxPath?: string;
  /** The journal, already opened (a daemon opens it first, to fail before it touches the host); wins over outboxPath. */
  journal?: ResultStore;
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

export type ChannelState = "idle" | "connecting" | "connected" | "disconnected" | "stopping" | "stopped";

export interface ChannelEvents {
  state: [state: ChannelState];
  connected: [info: { server: string; resumed: boolean; delivered: number }];
  disconnected: [info: { server: string; reason: string }];
}

export const DEFAULT_LIMITS: ChannelLimits = {
  maxMessageBytes: 1024 * 1024,
  maxConcurrentCommands: 8,
  maxQueuedCommands: 256,
  commandTimeoutMs: 120_000,
  maxStoredResults: 1000,
  maxPendingReports: 1000,
};

export const DEFAULT_LIVENESS: ChannelLiveness = { pingIntervalMs: 5000, silenceTimeoutMs: 15_000, connectTimeoutMs: 10_000 };

export const DEFAULT_HEARTBEAT_MS = 10_000;

import type { Logger } from "pino";
import type { RequestId } from "../protocol/index.js";
import type { HostTokens } from "./agent-auth.js";
import type { AgentInfo } from "./agent-registry.js";
import type { Report } from "./report-log.js";

export interface ManagementServerOptions {
  /** Listen address; default 127.0.0.1, port 0 (any). */
  host?: string;
  port?: number;
  /** TLS: server certificate and key; `ca` turns on mutual TLS (a hostId must match its client certificate). */
  tls?: { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer };
  /** Per-host tokens (./agent-auth.ts): a hostId must match the host its bearer token belongs to. */
  hostTokens?: HostTokens;
  /** Lab mode: bearer tokens shared by every agent, which may then say hello as any host. */
  tokens?: readonly string[];
  /** Accept agents without any credentials; only on a loopback address (tests, local experiments). */
  unauthenticatedLoopback?: boolean;
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
  /** Reports kept: entries (default 10,000) and bytes of their frames (default 64 MiB). */
  maxReports?: number;
  maxReportBytes?: number;
  /** Bytes of hello frames (inventories) kept for all hosts. Default 256 MiB. */
  maxAgentBytes?: number;
  /** Sockets held at once. Default 4096. */
  maxConnections?: number;
  /** From TCP accept to the accepted hello. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** A host gone for longer than this is forgotten. Default 1 h. */
  departedHostTtlMs?: number;
  /** How long a connected agent has to answer a ping before a second one with its hostId replaces it. Default 2 s. */
  duplicateProbeMs?: number;
  logger?: Logger;
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

import { randomBytes } from "node:crypto";
import type { AgentHelloParams } from "../protocol/index.js";
import { type CredentialKind, sameSecret } from "./agent-auth.js";

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
  /** What bound this agent's hostId (see ./agent-auth.ts). */
  credential: CredentialKind;
  pendingCommands: number;
}

export interface RegistryLimits {
  /** Bytes of hello frames (the inventories) kept for all known hosts. */
  maxBytes: number;
  /** A host disconnected for longer than this is forgotten. */
  departedTtlMs: number;
}

interface Known {
  info: AgentInfo;
  bytes: number;
  resumeToken: string;
  departedAt: number | undefined;
}

/**
 * The agents the server knows: the last hello of each (its inventory) and its resume token,
 * bounded in bytes (the size of the hello frames kept) and pruned of hosts gone for longer than
 * the configured time. When a new hello does not fit, departed hosts are forgotten oldest first;
 * when it still does not fit, the hello is refused.
 */
export class AgentRegistry {
  private readonly known = new Map<string, Known>();
  private totalBytes = 0;

  constructor(private readonly limits: RegistryLimits) {}

  get(hostId: string): AgentInfo | undefined {
    return this.known.get(hostId)?.info;
  }

  all(): AgentInfo[] {
    return [...this.known.values()].map((entry) => entry.info);
  }

  get bytes(): number {
    return this.totalBytes;
  }

  get size(): number {
    return this.known.size;
  }

  /** Makes room for a hello of `bytes` from `hostId`; false when even forgetting departed hosts cannot. */
  admit(hostId: string, bytes: number): boolean {
    const current = this.known.get(hostId)?.bytes ?? 0;
    if (this.totalBytes - current + bytes <= this.limits.maxBytes) return true;
    const departed = [...this.known.entries()]
      .filter(([id, entry]) => id !== hostId && entry.departedAt !== undefined)
      .sort(([, a], [, b]) => (a.departedAt as number) - (b.departedAt as number));
    for (const [id] of departed) {
      this.forget(id);
      if (this.totalBytes - current + bytes <= this.limits.maxBytes) return true;
    }
    return false;
  }

  /** Records an accepted hello; answers with the host's resume token and whether the agent presented it. */
  register(info: AgentInfo, bytes: number, presentedToken: string | undefined): { resumeToken: string; resumed: boolean } {
    const previous = this.known.get(info.hostId);
    const resumed = previous !== undefined && presentedToken !== undefined && sameSecret(previous.resumeToken, presentedToken);
    const resumeToken = previous?.resumeToken ?? randomBytes(18).toString("base64url");
    this.totalBytes += bytes - (previous?.bytes ?? 0);
    this.known.set(info.hostId, { info, bytes, resumeToken, departedAt: undefined });
    return { resumeToken, resumed };
  }

  touch(hostId: string): void {
    const entry = this.known.get(hostId);
    if (entry !== undefined) entry.info.lastSeen = new Date().toISOString();
  }

  departed(hostId: string, now = Date.now()): void {
    const entry = this.known.get(hostId);
    if (entry === undefined) return;
    entry.info.connected = false;
    entry.departedAt = now;
  }

  /** Forgets hosts departed longer than the TTL ago, unless `keep` says otherwise; returns them. */
  prune(keep: (hostId: string) => boolean, now = Date.now()): string[] {
    const gone: string[] = [];
    for (const [hostId, entry] of this.known) {
      if (entry.departedAt !== undefined && now - entry.departedAt > this.limits.departedTtlMs && !keep(hostId)) {
        this.forget(hostId);
        gone.push(hostId);
      }
    }
    return gone;
  }

  private forget(hostId: string): void {
    const entry = this.known.get(hostId);
    if (entry === undefined) return;
    this.totalBytes -= entry.bytes;
    this.known.delete(hostId);
  }
}

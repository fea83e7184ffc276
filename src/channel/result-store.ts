import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { type RequestId, RPC_ERRORS, type RpcErrorObject, rpcError } from "../protocol/index.js";

/**
 * The agent's memory of commands, persisted across restarts: which ids started, their final
 * response (result or error), and whether that response was handed to a live connection. It is
 * both the outbox (responses not yet sent are delivered after the next `agent.hello`) and the
 * duplicate filter (an id seen before is answered from here, never executed twice).
 *
 * Storage is an append-only JSON-lines journal, compacted atomically (write + rename) when it
 * grows, so recording a step costs one small append rather than rewriting the file. A command
 * that started but never finished before a restart is answered with -32010 "interrupted":
 * running it again could apply it twice.
 */
export type StoredResponse = { result: unknown } | { error: RpcErrorObject };

export interface StoredCommand {
  id: RequestId;
  method: string;
  state: "running" | "done";
  response?: StoredResponse;
  sent: boolean;
}

type JournalRecord =
  | { t: "start"; id: RequestId; method: string }
  | { t: "done"; id: RequestId; response: StoredResponse }
  | { t: "sent"; id: RequestId }
  | { t: "token"; token: string };

export interface ResultStoreOptions {
  /** Journal file; omitted: in memory only (tests, benchmarks, simulated agents). */
  path?: string;
  /** Finished commands kept (oldest sent ones evicted first). Default 1000. */
  maxEntries?: number;
  logger?: Logger;
}

export class ResultStore {
  private readonly entries = new Map<string, StoredCommand>();
  private readonly maxEntries: number;
  private readonly path: string | undefined;
  private readonly logger: Logger | undefined;
  private fd: number | undefined;
  private journalLines = 0;
  private token: string | undefined;

  constructor(options: ResultStoreOptions = {}) {
    this.path = options.path;
    this.maxEntries = options.maxEntries ?? 1000;
    this.logger = options.logger;
    if (this.path !== undefined) this.load(this.path);
  }

  get resumeToken(): string | undefined {
    return this.token;
  }

  set resumeToken(token: string | undefined) {
    if (token === undefined || token === this.token) return;
    this.token = token;
    this.append({ t: "token", token });
  }

  get(id: RequestId): StoredCommand | undefined {
    return this.entries.get(key(id));
  }

  begin(id: RequestId, method: string): void {
    this.entries.set(key(id), { id, method, state: "running", sent: false });
    this.append({ t: "start", id, method });
  }

  complete(id: RequestId, response: StoredResponse): void {
    const entry = this.entries.get(key(id));
    if (entry === undefined || entry.state === "done") return;
    entry.state = "done";
    entry.response = response;
    this.append({ t: "done", id, response });
    this.evict();
  }

  markSent(id: RequestId): void {
    const entry = this.entries.get(key(id));
    if (entry === undefined || entry.sent) return;
    entry.sent = true;
    this.append({ t: "sent", id });
  }

  /** Finished responses not yet handed to a connection, oldest first. */
  unsent(): StoredCommand[] {
    return [...this.entries.values()].filter((entry) => entry.state === "done" && !entry.sent);
  }

  get size(): number {
    return this.entries.size;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private load(path: string): void {
    mkdirSync(dirname(path), { recursive: true });
    if (existsSync(path)) {
      for (const line of readFileSync(path, "utf8").split("\n")) {
        if (line.trim() === "") continue;
        try {
          this.replay(JSON.parse(line) as JournalRecord);
        } catch {
          // A torn last line after a crash: everything before it is intact.
          this.logger?.warn({ path }, "outbox journal has an unreadable line; skipped");
        }
      }
    }
    for (const entry of this.entries.values()) {
      if (entry.state === "running") {
        entry.state = "done";
        entry.sent = false;
        entry.response = {
          error: rpcError(
            RPC_ERRORS.interrupted,
            `the agent restarted while ${entry.method} ran; its effect is unknown (reissue with a new id or send state.sync)`,
          ),
        };
        this.logger?.warn({ cmd: entry.id, method: entry.method }, "command interrupted by an agent restart");
      }
    }
    this.evict();
    this.compact();
  }

  private replay(record: JournalRecord): void {
    switch (record.t) {
      case "start":
        this.entries.set(key(record.id), { id: record.id, method: record.method, state: "running", sent: false });
        break;
      case "done": {
        const entry = this.entries.get(key(record.id));
        if (entry !== undefined) {
          entry.state = "done";
          entry.response = record.response;
        }
        break;
      }
      case "sent": {
        const entry = this.entries.get(key(record.id));
        if (entry !== undefined) entry.sent = true;
        break;
      }
      case "token":
        this.token = record.token;
        break;
    }
  }

  private evict(): void {
    if (this.entries.size <= this.maxEntries) return;
    for (const [id, entry] of this.entries) {
      if (this.entries.size <= this.maxEntries) return;
      if (entry.state === "done" && entry.sent) this.entries.delete(id);
    }
    for (const [id, entry] of this.entries) {
      if (this.entries.size <= this.maxEntries) return;
      if (entry.state === "done") {
        this.logger?.error({ cmd: entry.id, method: entry.method }, "outbox full: dropped an undelivered result");
        this.entries.delete(id);
      }
    }
  }

  private append(record: JournalRecord): void {
    if (this.path === undefined) return;
    if (this.fd === undefined) this.fd = openSync(this.path, "a", 0o600);
    writeSync(this.fd, `${JSON.stringify(record)}\n`);
    this.journalLines += 1;
    if (this.journalLines > this.maxEntries * 4 + 16) this.compact();
  }

  /** Rewrites the journal as the current state, atomically. */
  private compact(): void {
    if (this.path === undefined) return;
    const lines: string[] = [];
    if (this.token !== undefined) lines.push(JSON.stringify({ t: "token", token: this.token }));
    for (const entry of this.entries.values()) {
      lines.push(JSON.stringify({ t: "start", id: entry.id, method: entry.method }));
      if (entry.state === "done") lines.push(JSON.stringify({ t: "done", id: entry.id, response: entry.response }));
      if (entry.sent) lines.push(JSON.stringify({ t: "sent", id: entry.id }));
    }
    const temporary = `${this.path}.tmp`;
    const fd = openSync(temporary, "w", 0o600);
    writeSync(fd, lines.length === 0 ? "" : `${lines.join("\n")}\n`);
    closeSync(fd);
    if (this.fd !== undefined) closeSync(this.fd);
    renameSync(temporary, this.path);
    this.fd = openSync(this.path, "a", 0o600);
    this.journalLines = lines.length;
  }
}

/** Map key of a JSON-RPC id: 1 and "1" are different ids. */
function key(id: RequestId): string {
  return typeof id === "number" ? `n${id}` : `s${id}`;
}

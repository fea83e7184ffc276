import { closeSync, copyFileSync } from "node:fs";
import type { Logger } from "pino";
import { V6Error } from "../errors.js";
import { type RequestId, RPC_ERRORS, rpcError } from "../protocol/index.js";
import {
  appendRecord,
  type JournalRecord,
  openForAppend,
  readJournal,
  type StoredResponse,
  unusable,
  writeJournal,
} from "./journal-file.js";

export type { StoredResponse } from "./journal-file.js";

/**
 * The agent's memory of commands, persisted across restarts: which ids started (with a digest
 * of the request), their final response (result or error), and whether that response was handed
 * to a live connection. It is both the outbox (responses not yet sent are delivered after the
 * next `agent.hello`) and the duplicate filter (an id seen before is answered from here, never
 * executed twice).
 *
 * Storage is an append-only JSON-lines journal (./journal-file.ts), compacted atomically when it
 * grows, so recording a step costs one small append rather than rewriting the file. A command
 * that started but never finished before a restart is answered with -32010 "interrupted":
 * running it again could apply it twice. A damaged journal cannot say which ids ran: the store
 * is then `damaged` (the channel refuses ids it does not know, -32011) until a server
 * acknowledges the damage in its hello answer.
 */
export interface StoredCommand {
  id: RequestId;
  method: string;
  /** Fingerprint of the request (./request-digest.ts); absent only in entries rebuilt from damage. */
  digest?: string;
  state: "running" | "done";
  response?: StoredResponse;
  sent: boolean;
}

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
  private damage: string | undefined;
  /** The last append failed: the file may end in a partial line, so the next write rewrites it whole. */
  private broken = false;

  /** Throws a V6Error naming the path when the journal cannot be read or written. */
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
    this.tryAppend({ t: "token", token });
  }

  /** True from finding damage until a server acknowledged it: ids this store does not know cannot be proven new. */
  get damaged(): boolean {
    return this.damage !== undefined;
  }

  /** A server promised to send only new ids from now on: every id unknown here is new again. */
  acknowledgeDamage(): void {
    if (this.damage === undefined) return;
    this.logger?.warn({ damage: this.damage }, "the management server acknowledged the journal damage; new command ids run again");
    this.damage = undefined;
    try {
      this.compact();
    } catch (error) {
      // The file still says damaged: after a restart the store is damaged again, which is safe.
      this.logger?.error({ err: error }, "could not rewrite the command journal after the acknowledgement");
    }
  }

  get(id: RequestId): StoredCommand | undefined {
    return this.entries.get(key(id));
  }

  /** Records that a command starts; throws (and records nothing) when the journal cannot be written. */
  begin(id: RequestId, method: string, digest: string): void {
    this.append({ t: "start", id, method, digest });
    this.entries.set(key(id), { id, method, digest, state: "running", sent: false });
  }

  complete(id: RequestId, response: StoredResponse): void {
    const entry = this.entries.get(key(id));
    if (entry === undefined || entry.state === "done") return;
    entry.state = "done";
    entry.response = response;
    // Not recorded on disk: after a restart the command reads as interrupted, never as new.
    this.tryAppend({ t: "done", id, response });
    this.evict();
  }

  markSent(id: RequestId): void {
    const entry = this.entries.get(key(id));
    if (entry === undefined || entry.sent) return;
    entry.sent = true;
    this.tryAppend({ t: "sent", id });
  }

  /** Finished responses not yet handed to a connection, oldest first. */
  unsent(): StoredCommand[] {
    return [...this.entries.values()].filter((entry) => entry.state === "done" && !entry.sent);
  }

  get size(): number {
    return this.entries.size;
  }

  close(): void {
    if (this.fd !== undefined) closeQuietly(this.fd);
    this.fd = undefined;
  }

  private load(path: string): void {
    const contents = readJournal(path);
    const orphans: string[] = [];
    for (const record of contents.records) this.replay(record, orphans);
    const found =
      contents.damage ?? (orphans.length > 0 ? `records for ids that never started: ${orphans.slice(0, 3).join(", ")}` : undefined);
    if (found !== undefined) {
      // The damaged file is kept for a post-mortem; the journal itself is rewritten below.
      const copy = `${path}.damaged`;
      try {
        copyFileSync(path, copy);
      } catch (error) {
        this.logger?.warn({ err: error, copy }, "could not keep a copy of the damaged journal");
      }
      this.damage = found;
      this.logger?.error(
        { path, damage: found, copy },
        "command journal damaged: it cannot prove which command ids ran, so ids it does not know are refused (-32011) until a management server acknowledges the damage",
      );
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
    try {
      this.compact();
    } catch (error) {
      throw unusable(path, error);
    }
  }

  private replay(record: JournalRecord, orphans: string[]): void {
    switch (record.t) {
      case "start": {
        const entry: StoredCommand = { id: record.id, method: record.method, state: "running", sent: false };
        if (record.digest !== undefined) entry.digest = record.digest;
        this.entries.set(key(record.id), entry);
        return;
      }
      case "done":
      case "sent": {
        const entry = this.entries.get(key(record.id));
        if (entry === undefined) {
          // Its start record is gone: the id ran, and other records may be gone with it.
          orphans.push(JSON.stringify(record.id));
          if (record.t === "done")
            this.entries.set(key(record.id), { id: record.id, method: "unknown", state: "done", response: record.response, sent: false });
          return;
        }
        if (record.t === "sent") entry.sent = true;
        else {
          entry.state = "done";
          entry.response = record.response;
        }
        return;
      }
      case "token":
        this.token = record.token;
        return;
      case "damaged":
        this.damage ??= "damage found at an earlier start, not yet acknowledged by a management server";
        return;
      case "journal":
        return;
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

  /** Writes a record, or throws a V6Error "unavailable": a command must not run unless its start is on record. */
  private append(record: JournalRecord): void {
    if (this.path === undefined) return;
    try {
      if (this.broken) this.compact();
      this.fd ??= openForAppend(this.path);
      appendRecord(this.fd, record);
    } catch (error) {
      this.broken = true;
      throw new V6Error("unavailable", `command journal ${this.path}: cannot write: ${(error as Error).message}`);
    }
    this.journalLines += 1;
    if (this.journalLines > this.maxEntries * 4 + 16) this.tryCompact();
  }

  /** For steps whose loss is safe (a later restart sees the command as interrupted or undelivered). */
  private tryAppend(record: JournalRecord): void {
    try {
      this.append(record);
    } catch (error) {
      this.logger?.error({ err: error, record: record.t }, "could not journal a step");
    }
  }

  private tryCompact(): void {
    try {
      this.compact();
    } catch (error) {
      this.broken = true;
      this.logger?.error({ err: error }, "could not compact the command journal");
    }
  }

  /** Rewrites the journal as the current state, atomically. */
  private compact(): void {
    if (this.path === undefined) return;
    const records: JournalRecord[] = [];
    if (this.damage !== undefined) records.push({ t: "damaged" });
    if (this.token !== undefined) records.push({ t: "token", token: this.token });
    for (const entry of this.entries.values()) {
      const start: JournalRecord = { t: "start", id: entry.id, method: entry.method };
      if (entry.digest !== undefined) start.digest = entry.digest;
      records.push(start);
      if (entry.state === "done") records.push({ t: "done", id: entry.id, response: entry.response as StoredResponse });
      if (entry.sent) records.push({ t: "sent", id: entry.id });
    }
    if (this.fd !== undefined) closeQuietly(this.fd);
    this.fd = undefined;
    writeJournal(this.path, records);
    this.fd = openForAppend(this.path);
    this.journalLines = records.length + 1;
    this.broken = false;
  }
}

/** Map key of a JSON-RPC id: 1 and "1" are different ids. */
function key(id: RequestId): string {
  return typeof id === "number" ? `n${id}` : `s${id}`;
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already closed or invalid: nothing left to release.
  }
}

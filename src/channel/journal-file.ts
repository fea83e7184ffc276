import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { V6Error } from "../errors.js";
import type { RequestId, RpcErrorObject } from "../protocol/index.js";

/**
 * The on-disk form of the command journal: JSON lines, the first a header, each record appended
 * with one write before the step it describes takes effect (write-ahead), rewritten atomically
 * (temporary file, fsync, rename) when compacted.
 *
 * Reading is strict: anything but a header followed by complete, well-formed records (a line
 * cut short, an unreadable line, a second header, an empty file) is damage, after which the
 * journal can no longer prove which command ids ran. A line cut short could be the one write a
 * crash interrupted, but it looks exactly like a file truncated in the middle, which loses every
 * record after it, so it is not forgiven. (A cut exactly at a line boundary cannot be seen:
 * docs/protocol.md says so.)
 */
export type StoredResponse = { result: unknown } | { error: RpcErrorObject };

export type JournalRecord =
  | { t: "journal"; v: 1 }
  | { t: "start"; id: RequestId; method: string; digest?: string }
  | { t: "done"; id: RequestId; response: StoredResponse }
  | { t: "sent"; id: RequestId }
  | { t: "token"; token: string }
  /** Damage found at an earlier start and not yet acknowledged by a server. */
  | { t: "damaged" };

export const JOURNAL_HEADER: JournalRecord = { t: "journal", v: 1 };

export interface JournalContents {
  records: JournalRecord[];
  /** Why the journal cannot be trusted to hold every id it was given; undefined when it can. */
  damage: string | undefined;
}

/** Reads a journal; a missing file is an empty, undamaged one. Throws a V6Error when the path is unusable. */
export function readJournal(path: string): JournalContents {
  let text: string;
  try {
    mkdirSync(dirname(path), { recursive: true });
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { records: [], damage: undefined };
    throw unusable(path, error);
  }
  if (text === "") return { records: [], damage: "the file is empty (its header is missing)" };
  const lines = text.split("\n");
  const records: JournalRecord[] = [];
  let damage: string | undefined;
  if ((lines.pop() as string) !== "") damage = `line ${lines.length + 1} is cut short (a torn write or a truncated file)`;
  lines.forEach((line, index) => {
    const record = parseRecord(line);
    if (record === undefined) damage ??= `line ${index + 1} is not a journal record`;
    else if (index === 0 && record.t !== "journal") damage ??= "the header line is missing";
    else if (index > 0 && record.t === "journal") damage ??= `line ${index + 1} is a second header`;
    else records.push(record);
  });
  if (lines.length === 0) damage ??= "the header line is missing";
  return { records, damage };
}

/** Replaces the journal with `records` (header first) atomically; the new file is on disk before the rename. */
export function writeJournal(path: string, records: readonly JournalRecord[]): void {
  const temporary = `${path}.tmp`;
  const fd = openSync(temporary, "w", 0o600);
  try {
    writeFully(fd, `${[JOURNAL_HEADER, ...records].map((record) => JSON.stringify(record)).join("\n")}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
}

export function openForAppend(path: string): number {
  return openSync(path, "a", 0o600);
}

/** Appends one record as one line. */
export function appendRecord(fd: number, record: JournalRecord): void {
  writeFully(fd, `${JSON.stringify(record)}\n`);
}

export function unusable(path: string, error: unknown): V6Error {
  return new V6Error("host_failure", `command journal ${path} is unusable: ${(error as Error).message}`, { field: "journal" });
}

function writeFully(fd: number, text: string): void {
  const bytes = Buffer.from(text);
  for (let offset = 0; offset < bytes.length; ) offset += writeSync(fd, bytes, offset);
}

function isId(value: unknown): value is RequestId {
  return (typeof value === "string" && value.length > 0) || Number.isSafeInteger(value);
}

function parseRecord(line: string): JournalRecord | undefined {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== "object") return undefined;
  switch (value.t) {
    case "journal":
      return value.v === 1 ? (value as JournalRecord) : undefined;
    case "start":
      return isId(value.id) && typeof value.method === "string" && (value.digest === undefined || typeof value.digest === "string")
        ? (value as JournalRecord)
        : undefined;
    case "done": {
      const response = value.response as Record<string, unknown> | null;
      return isId(value.id) && response !== null && typeof response === "object" && ("result" in response || "error" in response)
        ? (value as JournalRecord)
        : undefined;
    }
    case "sent":
      return isId(value.id) ? (value as JournalRecord) : undefined;
    case "token":
      return typeof value.token === "string" ? (value as JournalRecord) : undefined;
    case "damaged":
      return value as JournalRecord;
    default:
      return undefined;
  }
}

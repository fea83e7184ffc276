import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { V6Error } from "../errors.js";
import type { Logger } from "../log.js";

/**
 * The agent's desired state on disk (design section 2, "state file"): one JSON document with a
 * schema version, replaced atomically so a crash at any instant leaves either the old or the new
 * complete state, never a torn one. Generic over the payload; the agent core owns its shape.
 */
export interface StateStoreOptions<T> {
  /** The state file, e.g. /var/lib/v6agent/state.json. */
  path: string;
  /** The schema version this build writes; a file with a newer one is refused. */
  version: number;
  /** Turns the parsed payload into T or throws (a throw marks the file corrupt). */
  validate: (raw: unknown) => T;
  /** The state of a host that has never saved anything. */
  empty: () => T;
  logger?: Logger;
  /** Clock for the corrupt-file suffix (tests pin it). */
  now?: () => Date;
}

export type LoadReport =
  | { status: "loaded"; savedAt: string }
  | { status: "missing" }
  | { status: "corrupt"; reason: string; keptAs: string };

/** The file's envelope around the payload. */
interface StateFile {
  schemaVersion: number;
  savedAt: string;
  state: unknown;
}

export class StateStore<T> {
  private readonly options: StateStoreOptions<T>;
  /** Saves run one after another: each waits for the previous one, success or failure. */
  private queue: Promise<void> = Promise.resolve();
  private report: LoadReport | undefined;

  constructor(options: StateStoreOptions<T>) {
    if (!Number.isInteger(options.version) || options.version < 1) {
      throw new V6Error("internal", `StateStore version must be a positive integer, got ${options.version}`);
    }
    this.options = options;
  }

  get path(): string {
    return this.options.path;
  }

  /** What the last load found: loaded, missing, or corrupt (and where the bad file went). */
  get lastLoad(): LoadReport | undefined {
    return this.report;
  }

  /**
   * Reads the state. A missing file gives `empty()`. A corrupt file (not JSON, a bad envelope, or
   * a payload `validate` rejects) is renamed to `<path>.corrupt-<timestamp>`, reported in the log
   * and in `lastLoad`, and `empty()` is returned so the agent can start and converge from the
   * management server's full state. A newer schema version is an error: an older agent must not
   * guess at, or overwrite, state a newer one wrote.
   */
  async load(): Promise<T> {
    await this.removeStaleTemps();
    let text: string;
    try {
      text = await readFile(this.options.path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        this.report = { status: "missing" };
        return this.options.empty();
      }
      throw new V6Error("host_failure", `cannot read state file ${this.options.path}: ${(error as Error).message}`, { cause: error });
    }
    let file: StateFile;
    try {
      file = parseEnvelope(text);
    } catch (error) {
      return this.keepAside((error as Error).message);
    }
    if (file.schemaVersion > this.options.version) {
      throw new V6Error(
        "conflict",
        `state file ${this.options.path} has schema version ${file.schemaVersion}, newer than the ${this.options.version} this v6agent understands; upgrade v6agent (or move the file away to start from an empty state)`,
      );
    }
    if (file.schemaVersion < this.options.version) {
      throw new V6Error(
        "conflict",
        `state file ${this.options.path} has schema version ${file.schemaVersion}, older than ${this.options.version}, and no migration exists yet; move the file away to start from an empty state`,
      );
    }
    let value: T;
    try {
      value = this.options.validate(file.state);
    } catch (error) {
      return this.keepAside(`invalid state: ${error instanceof Error ? error.message : String(error)}`);
    }
    this.report = { status: "loaded", savedAt: file.savedAt };
    return value;
  }

  /**
   * Writes the state atomically: a temp file in the same directory (so rename stays within one
   * file system), fsync it, rename it over the old file, fsync the directory so the rename itself
   * survives a power cut. Concurrent calls are queued and never interleave.
   */
  save(value: T): Promise<void> {
    const next = this.queue.then(() => this.write(value));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async write(value: T): Promise<void> {
    const file: StateFile = {
      schemaVersion: this.options.version,
      savedAt: (this.options.now?.() ?? new Date()).toISOString(),
      state: value,
    };
    const text = `${JSON.stringify(file, null, 2)}\n`;
    const directory = dirname(this.options.path);
    await mkdir(directory, { recursive: true, mode: 0o700 });
    const temp = join(directory, `.${basename(this.options.path)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
    try {
      const handle = await open(temp, "wx", 0o600);
      try {
        await handle.writeFile(text, "utf8");
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.options.path);
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw new V6Error("host_failure", `cannot save state file ${this.options.path}: ${(error as Error).message}`, { cause: error });
    }
    const dir = await open(directory, "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  /** Temp files a killed save left behind; the state file itself is intact by construction. */
  private async removeStaleTemps(): Promise<void> {
    const directory = dirname(this.options.path);
    const prefix = `.${basename(this.options.path)}.tmp-`;
    let names: string[];
    try {
      names = await readdir(directory);
    } catch {
      return;
    }
    for (const name of names.filter((candidate) => candidate.startsWith(prefix))) {
      await unlink(join(directory, name)).catch(() => undefined);
    }
  }

  private async keepAside(reason: string): Promise<T> {
    const stamp = (this.options.now?.() ?? new Date()).toISOString().replaceAll(":", "-");
    const keptAs = `${this.options.path}.corrupt-${stamp}`;
    await rename(this.options.path, keptAs);
    this.report = { status: "corrupt", reason, keptAs };
    this.options.logger?.error(
      { path: this.options.path, keptAs, reason },
      "state file is corrupt; kept it aside and started from an empty state",
    );
    return this.options.empty();
  }
}

function parseEnvelope(text: string): StateFile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new Error(`not JSON: ${(error as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error("not a JSON object");
  const record = raw as Record<string, unknown>;
  if (!Number.isInteger(record.schemaVersion) || (record.schemaVersion as number) < 1) {
    throw new Error("schemaVersion is missing or not a positive integer");
  }
  if (typeof record.savedAt !== "string") throw new Error("savedAt is missing");
  if (!("state" in record)) throw new Error("state is missing");
  return { schemaVersion: record.schemaVersion as number, savedAt: record.savedAt, state: record.state };
}

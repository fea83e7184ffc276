import { randomBytes } from "node:crypto";
import { link, mkdir, open, readdir, readFile, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { V6Error } from "../errors.js";
import type { Logger } from "../log.js";

/**
 * The agent's desired state on disk (design section 2, "state file"): one JSON document with a
 * schema version, replaced atomically so a crash at any instant leaves either the old or the new
 * complete state, never a torn one. The state it replaces is kept as `<path>.prev`, so a file
 * damaged behind our back (a disk error, an editor, a truncation) falls back to the last good one
 * rather than to nothing. Generic over the payload; the agent core owns its shape.
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
  /** The file was corrupt (kept aside); the previous good state was loaded instead. */
  | { status: "recovered"; reason: string; keptAs: string; savedAt: string }
  /** The file was corrupt and there is no good previous state: what was loaded is empty and must not be acted on. */
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
   * a payload `validate` rejects) is renamed to `<path>.corrupt-<timestamp>` and the previous good
   * state (`<path>.prev`) is loaded instead (`recovered`); with none, `empty()` is returned and
   * `lastLoad` says `corrupt`, which `unusable()` turns into the reason the caller must not act
   * on it (the agent then leaves the live rules alone until the server's state.sync). A newer
   * schema version is an error: an older agent must not guess at, or overwrite, state a newer
   * one wrote. A path that cannot be read (a directory, no permission) is an error too.
   */
  async load(options: { readOnly?: boolean } = {}): Promise<T> {
    // `readOnly` (diag): look, change nothing on disk; a corrupt file stays where it is.
    if (options.readOnly !== true) await this.removeStaleTemps();
    const text = await this.readText(this.options.path);
    if (text === undefined) {
      this.report = { status: "missing" };
      return this.options.empty();
    }
    const current = this.decode(text);
    if ("value" in current) {
      this.report = { status: "loaded", savedAt: current.savedAt };
      return current.value;
    }
    const keptAs = options.readOnly === true ? this.options.path : await this.keepAside();
    const previousText = await this.readText(this.previousPath).catch(() => undefined);
    const previous = previousText === undefined ? undefined : this.decode(previousText);
    if (previous !== undefined && "value" in previous) {
      this.report = { status: "recovered", reason: current.problem, keptAs, savedAt: previous.savedAt };
      this.options.logger?.error(
        { path: this.options.path, keptAs, reason: current.problem, previousSavedAt: previous.savedAt },
        "state file is corrupt; kept it aside and loaded the previous good state",
      );
      return previous.value;
    }
    this.report = { status: "corrupt", reason: current.problem, keptAs };
    this.options.logger?.error(
      { path: this.options.path, keptAs, reason: current.problem },
      "state file is corrupt and no previous good state exists; the live rules stay as they are until the server sends state.sync",
    );
    return this.options.empty();
  }

  /** Why the loaded state must not be acted on (a corrupt file with no good previous copy), if so. */
  unusable(): string | undefined {
    const report = this.report;
    return report?.status === "corrupt"
      ? `state file ${this.options.path} is corrupt (${report.reason}; kept as ${report.keptAs})`
      : undefined;
  }

  private get previousPath(): string {
    return `${this.options.path}.prev`;
  }

  /** The file's text, or undefined when it does not exist. */
  private async readText(path: string): Promise<string | undefined> {
    try {
      return await readFile(path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new V6Error("host_failure", `cannot read state file ${path}: ${(error as Error).message}`, { cause: error });
    }
  }

  /** The payload of a state file's text, or why it is unusable. Schema versions this build cannot read throw. */
  private decode(text: string): { value: T; savedAt: string } | { problem: string } {
    let file: StateFile;
    try {
      file = parseEnvelope(text);
    } catch (error) {
      return { problem: (error as Error).message };
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
    try {
      return { value: this.options.validate(file.state), savedAt: file.savedAt };
    } catch (error) {
      return { problem: `invalid state: ${error instanceof Error ? error.message : String(error)}` };
    }
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
      await this.keepPrevious(directory);
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

  /**
   * The state about to be replaced becomes `<path>.prev`: hard-linked under a temp name, then
   * renamed, so the state file itself is never absent and `.prev` is always a whole file.
   */
  private async keepPrevious(directory: string): Promise<void> {
    const temp = join(directory, `.${basename(this.options.path)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}-prev`);
    try {
      await link(this.options.path, temp);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return; // the first save
      throw error;
    }
    await rename(temp, this.previousPath);
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

  /** Moves the corrupt state file aside (for the operator to look at); returns where it went. */
  private async keepAside(): Promise<string> {
    const stamp = (this.options.now?.() ?? new Date()).toISOString().replaceAll(":", "-");
    const keptAs = `${this.options.path}.corrupt-${stamp}`;
    await rename(this.options.path, keptAs);
    return keptAs;
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

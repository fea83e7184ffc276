import { randomUUID } from "node:crypto";
import { classSpec, defaultValue } from "./datamodel.js";
import { XapiFailure } from "./failure.js";

/** A record as it travels on the wire: field name → JSON value. */
export type XapiRecord = Record<string, unknown>;

export type EventOperation = "add" | "mod" | "del";

export interface EventEntry {
  id: number;
  timestamp: string;
  /** XAPI reports event classes in lower case (`vm`, `vif`, `pif`). */
  className: string;
  operation: EventOperation;
  ref: string;
  uuid: string;
  /** The record right after the change (absent for `del`). */
  snapshot: XapiRecord | undefined;
}

/**
 * The simulator's database: one table per data-model class, keyed by `OpaqueRef:<uuid>`, and
 * the event log that `event.from` reads. Every record is created with *all* the fields the data
 * model declares (with their real defaults), and a write to a field the model does not have is
 * a bug in the simulator, so it throws.
 */
export class Database {
  private readonly tables = new Map<string, Map<string, XapiRecord>>();
  private readonly log: EventEntry[] = [];
  private lastEventId = 0;
  private readonly watchers = new Set<() => void>();

  /** `maxEvents`: how many events `event.from` can replay (older tokens get EVENTS_LOST, as on XAPI). */
  constructor(private readonly options: { maxEvents?: number } = {}) {}

  create(className: string, fields: XapiRecord = {}, ref = newRef()): string {
    const spec = classSpec(className);
    const record: XapiRecord = {};
    for (const field of spec.fields) record[field.name] = defaultValue(field);
    if (spec.fields.some((field) => field.name === "uuid")) record.uuid = randomUUID();
    this.assertFields(className, fields);
    Object.assign(record, structuredClone(fields));
    this.table(className).set(ref, record);
    this.emit(className, "add", ref, record);
    return ref;
  }

  has(className: string, ref: unknown): boolean {
    return typeof ref === "string" && this.table(className).has(ref);
  }

  /** The live record; throws `HANDLE_INVALID` like XAPI for an unknown reference. */
  get(className: string, ref: unknown): XapiRecord {
    const record = typeof ref === "string" ? this.table(className).get(ref) : undefined;
    if (record === undefined) throw new XapiFailure("HANDLE_INVALID", className, String(ref));
    return record;
  }

  all(className: string): [string, XapiRecord][] {
    return [...this.table(className).entries()];
  }

  find(className: string, predicate: (record: XapiRecord) => boolean): [string, XapiRecord] | undefined {
    return this.all(className).find(([, record]) => predicate(record));
  }

  byUuid(className: string, uuid: unknown): string {
    const found = this.find(className, (record) => record.uuid === uuid);
    if (found === undefined) throw new XapiFailure("UUID_INVALID", className, String(uuid));
    return found[0];
  }

  update(className: string, ref: string, patch: XapiRecord): XapiRecord {
    const record = this.get(className, ref);
    this.assertFields(className, patch);
    Object.assign(record, structuredClone(patch));
    this.emit(className, "mod", ref, record);
    return record;
  }

  remove(className: string, ref: string): void {
    const record = this.get(className, ref);
    this.table(className).delete(ref);
    this.emit(className, "del", ref, record);
  }

  /** A `mod` event without a change (what `event.inject` does). */
  touch(className: string, ref: string): number {
    this.emit(className, "mod", ref, this.get(className, ref));
    return this.lastEventId;
  }

  get currentEventId(): number {
    return this.lastEventId;
  }

  /** Events after `afterId` for the given lower-case classes (`*` = all), oldest first. */
  eventsAfter(afterId: number, classes: ReadonlySet<string>): EventEntry[] {
    const oldest = this.log[0]?.id ?? this.lastEventId + 1;
    if (afterId < oldest - 1) throw new XapiFailure("EVENTS_LOST");
    return this.log.filter((entry) => entry.id > afterId && (classes.has("*") || classes.has(entry.className)));
  }

  classNames(): string[] {
    return [...this.tables.keys()];
  }

  count(className: string): number {
    return this.table(className).size;
  }

  /** Calls `listener` after every new event until the returned function is called. */
  watch(listener: () => void): () => void {
    this.watchers.add(listener);
    return () => this.watchers.delete(listener);
  }

  wakeWatchers(): void {
    for (const listener of [...this.watchers]) listener();
  }

  private emit(className: string, operation: EventOperation, ref: string, record: XapiRecord): void {
    this.lastEventId += 1;
    this.log.push({
      id: this.lastEventId,
      timestamp: xapiDateTime(new Date()),
      className: className.toLowerCase(),
      operation,
      ref,
      uuid: typeof record.uuid === "string" ? record.uuid : "",
      snapshot: operation === "del" ? undefined : structuredClone(record),
    });
    if (this.log.length > (this.options.maxEvents ?? 10_000)) this.log.shift();
    for (const listener of [...this.watchers]) listener();
  }

  private assertFields(className: string, fields: XapiRecord): void {
    const known = new Set(classSpec(className).fields.map((field) => field.name));
    for (const name of Object.keys(fields)) {
      if (!known.has(name)) throw new Error(`simulator bug: ${className}.${name} is not a field of the XAPI data model`);
    }
  }

  private table(className: string): Map<string, XapiRecord> {
    let table = this.tables.get(className);
    if (table === undefined) {
      classSpec(className);
      table = new Map();
      this.tables.set(className, table);
    }
    return table;
  }
}

export function newRef(): string {
  return `OpaqueRef:${randomUUID()}`;
}

/** XAPI's datetime wire form: `20261126T09:42:11Z`. */
export function xapiDateTime(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace(/-/g, "")}Z`;
}

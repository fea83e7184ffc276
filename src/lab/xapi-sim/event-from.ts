import { type Database, type EventEntry, type XapiRecord, xapiDateTime } from "./database.js";
import { dataModel } from "./datamodel.js";
import { XapiFailure } from "./failure.js";

/**
 * `event.from(classes, token, timeout)`: the events after `token` for `classes` (lower case,
 * `*` for all), waiting up to `timeout` seconds for the first one; an empty token returns every
 * current object as `add`. The reply carries each object once, at its latest state, with
 * `valid_ref_counts` and the next token, like XAPI's.
 */
export async function eventFrom(db: Database, params: unknown[], isClosed: () => boolean): Promise<unknown> {
  const [classesParam, tokenParam, timeoutParam] = params;
  if (!Array.isArray(classesParam) || !classesParam.every((item) => typeof item === "string")) {
    throw new XapiFailure("FIELD_TYPE_ERROR", "classes");
  }
  const classes = new Set(classesParam.map((item) => item.toLowerCase()));
  const after = parseToken(tokenParam);
  const timeoutMs = Math.max(0, Math.min(Number(timeoutParam) || 0, 3600)) * 1000;
  let events = after === undefined ? snapshotEvents(db, classes) : db.eventsAfter(after, classes);
  if (events.length === 0 && after !== undefined) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      const unwatch = db.watch(() => {
        // Never throw into the change that woke us: a lost token is reported after the wait.
        let ready = true;
        try {
          ready = isClosed() || db.eventsAfter(after, classes).length > 0;
        } catch {}
        if (ready) done();
      });
      function done(): void {
        clearTimeout(timer);
        unwatch();
        resolve();
      }
    });
    events = db.eventsAfter(after, classes);
  }
  // Like XAPI, one batch carries each object once, at its latest state.
  const latest = new Map<string, (typeof events)[number]>();
  for (const event of events) {
    latest.delete(event.ref);
    latest.set(event.ref, event);
  }
  const validRefCounts: Record<string, number> = {};
  for (const cls of dataModel().keys()) {
    if (classes.has("*") || classes.has(cls.toLowerCase())) validRefCounts[cls.toLowerCase()] = db.count(cls);
  }
  return {
    events: [...latest.values()].map((event) => ({
      id: event.id,
      timestamp: event.timestamp,
      class: event.className,
      operation: event.operation,
      ref: event.ref,
      ...(event.operation === "del" ? {} : { snapshot: currentOr(db, event) }),
    })),
    valid_ref_counts: validRefCounts,
    token: formatToken(db.currentEventId),
  };
}

/** An empty token asks for every current object as an `add`. */
function snapshotEvents(db: Database, classes: ReadonlySet<string>): EventEntry[] {
  const events: EventEntry[] = [];
  for (const cls of dataModel().keys()) {
    if (!classes.has("*") && !classes.has(cls.toLowerCase())) continue;
    for (const [ref, record] of db.all(cls)) {
      events.push({
        id: db.currentEventId,
        timestamp: xapiDateTime(new Date()),
        className: cls.toLowerCase(),
        operation: "add" as const,
        ref,
        uuid: String(record.uuid ?? ""),
        snapshot: structuredClone(record),
      });
    }
  }
  return events;
}

function currentOr(db: Database, event: { className: string; ref: string; snapshot: XapiRecord | undefined }): XapiRecord | undefined {
  const cls = [...dataModel().keys()].find((name) => name.toLowerCase() === event.className);
  if (cls !== undefined && db.has(cls, event.ref)) return structuredClone(db.get(cls, event.ref));
  return event.snapshot;
}

/** Tokens look like XAPI's: `<event id, 20 digits>,<20 digits>`; an empty token means "from now, everything". */
export function formatToken(id: number): string {
  return `${String(id).padStart(20, "0")},${"0".repeat(20)}`;
}

export function parseToken(token: unknown): number | undefined {
  if (token === "" || token === undefined) return undefined;
  const match = typeof token === "string" ? /^(\d+)(,\d+)?$/.exec(token) : null;
  if (match === null) throw new XapiFailure("EVENT_FROM_TOKEN_PARSE_FAILURE", String(token));
  return Number(match[1]);
}

/** A class name as `event.inject` and event classes spell it (any case). */
export function className(cls: unknown): string {
  const wanted = String(cls).toLowerCase();
  const found = [...dataModel().keys()].find((name) => name.toLowerCase() === wanted);
  if (found === undefined) throw new XapiFailure("HANDLE_INVALID", String(cls), "");
  return found;
}

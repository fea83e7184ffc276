import type { Database, XapiRecord } from "./database.js";
import { xapiDateTime } from "./database.js";
import { dataModel, type FieldSpec, fieldKind, NULL_REF } from "./datamodel.js";
import type { Dom0Network } from "./dom0.js";
import { className, eventFrom, formatToken } from "./event-from.js";
import { XapiFailure } from "./failure.js";
import { XapiOperations } from "./operations.js";
import { asRecord, coerce } from "./values.js";
import { xmlRpcValue } from "./xmlrpc-value.js";

/** A method handler: its parameters after the session reference. */
type Handler = (params: unknown[], context: CallContext) => Promise<unknown> | unknown;

interface MethodEntry {
  /** Parameters after the session (for `session.login_with_password`: all of them). */
  arity: number | readonly [number, number];
  handler: Handler;
  /** Whether `Async.<name>` exists (XAPI: everything but getters/setters, session and task). */
  async: boolean;
  /** Whether the call needs a valid session as its first parameter. */
  needsSession: boolean;
}

interface CallContext {
  session: string;
}

/** Classes `get_all_records` is offered for (the xen-api client watches exactly these). */
const RECORD_CLASSES = [
  "pool",
  "host",
  "host_metrics",
  "VM",
  "VM_metrics",
  "VM_guest_metrics",
  "network",
  "VIF",
  "VIF_metrics",
  "PIF",
  "Bond",
  "VLAN",
  "task",
];

export interface SimulatorOptions {
  /** Accepted credentials; default `{ root: "xenroot" }`. */
  users?: Record<string, string>;
  dom0?: Dom0Network;
  /** Milliseconds an `Async.*` task stays pending before it runs (default 20). */
  asyncDelayMs?: number;
  /**
   * Milliseconds `VIF.plug` and `VIF.unplug` wait after taking effect before they answer (a slow
   * xenopsd). Default 0: the answer leaves the moment dom0's device is there, before `event.from`
   * has told anyone.
   */
  vifAnswerDelayMs?: number;
}

/**
 * XAPI's behaviour without the wire: sessions, the generic per-class accessors derived from
 * the data model, the constructors and operations the agent uses, `event.from`/`event.inject`
 * and `Async.*` tasks. `server.ts` puts it on HTTP(S).
 */
export class XapiSimulator {
  private readonly methods = new Map<string, MethodEntry>();
  private readonly users: Record<string, string>;
  private closed = false;
  readonly asyncDelayMs: number;
  dom0: Dom0Network | undefined;
  readonly operations: XapiOperations;

  constructor(
    readonly db: Database,
    options: SimulatorOptions = {},
  ) {
    this.users = options.users ?? { root: "xenroot" };
    this.dom0 = options.dom0;
    this.asyncDelayMs = options.asyncDelayMs ?? 20;
    this.operations = new XapiOperations(db, () => this.dom0, options.vifAnswerDelayMs ?? 0);
    this.registerGeneric();
    this.registerSpecific();
  }

  /** Every method name a client may call, as `system.listMethods` returns them. */
  listMethods(): string[] {
    const names: string[] = [];
    for (const [name, entry] of this.methods) {
      names.push(name);
      if (entry.async) names.push(`Async.${name}`);
    }
    return names.sort();
  }

  /** Runs one call; throws XapiFailure with XAPI's error for every refusal. */
  async call(method: string, params: unknown[]): Promise<unknown> {
    const isAsync = method.startsWith("Async.");
    const name = isAsync ? method.slice("Async.".length) : method;
    const entry = this.methods.get(name);
    if (entry === undefined || (isAsync && !entry.async)) throw new XapiFailure("MESSAGE_METHOD_UNKNOWN", method);
    let session = "";
    let rest = params;
    if (entry.needsSession) {
      session = this.checkSession(params[0]);
      rest = params.slice(1);
    }
    const [min, max] = typeof entry.arity === "number" ? [entry.arity, entry.arity] : entry.arity;
    if (rest.length < min || rest.length > max) {
      const expected = entry.needsSession ? max + 1 : max;
      throw new XapiFailure("MESSAGE_PARAMETER_COUNT_MISMATCH", method, expected, params.length);
    }
    if (!isAsync) return entry.handler(rest, { session });
    return this.startTask(name, entry, rest, session);
  }

  /** Wakes every blocked `event.from` so the server can close promptly. */
  shutdown(): void {
    this.closed = true;
    this.db.wakeWatchers();
  }

  checkSession(ref: unknown): string {
    if (typeof ref !== "string" || !this.db.has("session", ref)) throw new XapiFailure("SESSION_INVALID", String(ref));
    return ref;
  }

  /** Fault injection: every open session dies (as after xapi restarts or a session timeout). */
  expireSessions(): void {
    for (const [ref] of this.db.all("session")) this.db.remove("session", ref);
  }

  // -- session, system, event, task ---------------------------------------------------------

  private login(params: unknown[]): string {
    const [user, password, , originator] = params;
    if (typeof user !== "string" || this.users[user] === undefined || this.users[user] !== password) {
      throw new XapiFailure("SESSION_AUTHENTICATION_FAILED", String(user), "Authentication failure");
    }
    const [hostRef] = this.db.all("host")[0] ?? [NULL_REF];
    return this.db.create("session", {
      this_host: hostRef,
      this_user: NULL_REF,
      last_active: xapiDateTime(new Date()),
      pool: false,
      is_local_superuser: user === "root",
      auth_user_name: user,
      originator: typeof originator === "string" ? originator : "",
    });
  }

  private startTask(name: string, entry: MethodEntry, params: unknown[], session: string): string {
    const [hostRef] = this.db.all("host")[0] ?? [NULL_REF];
    const task = this.db.create("task", {
      name_label: `Async.${name}`,
      created: xapiDateTime(new Date()),
      finished: "19700101T00:00:00Z",
      status: "pending",
      resident_on: hostRef,
      progress: 0,
      type: "<none/>",
      result: "",
      error_info: [],
      allowed_operations: ["cancel"],
    });
    setTimeout(() => {
      void (async () => {
        let patch: XapiRecord;
        try {
          const value = await entry.handler(params, { session });
          patch = { status: "success", result: value === "" || value === undefined ? "" : xmlRpcValue(value) };
        } catch (error) {
          const failure = error instanceof XapiFailure ? error : new XapiFailure("INTERNAL_ERROR", String(error));
          patch = { status: "failure", error_info: failure.description };
        }
        if (!this.db.has("task", task)) return;
        this.db.update("task", task, { ...patch, progress: 1, finished: xapiDateTime(new Date()), allowed_operations: [] });
      })();
    }, this.asyncDelayMs);
    return task;
  }

  // -- generic accessors derived from the data model ------------------------------------------

  private registerGeneric(): void {
    for (const spec of dataModel().values()) {
      const cls = spec.name;
      if (cls === "event") continue;
      const recordClass = RECORD_CLASSES.includes(cls);
      if (recordClass) {
        this.define(`${cls}.get_all`, 0, () => this.db.all(cls).map(([ref]) => ref));
        this.define(`${cls}.get_all_records`, 0, () => Object.fromEntries(this.db.all(cls).map(([ref, record]) => [ref, record])));
      }
      this.define(`${cls}.get_record`, 1, ([ref]) => this.db.get(cls, ref));
      if (spec.fields.some((field) => field.name === "uuid")) this.define(`${cls}.get_by_uuid`, 1, ([uuid]) => this.db.byUuid(cls, uuid));
      if (spec.fields.some((field) => field.name === "name_label")) {
        this.define(`${cls}.get_by_name_label`, 1, ([label]) =>
          this.db
            .all(cls)
            .filter(([, record]) => record.name_label === label)
            .map(([ref]) => ref),
        );
      }
      for (const field of spec.fields) this.registerField(cls, field);
    }
  }

  private registerField(cls: string, field: FieldSpec): void {
    this.define(`${cls}.get_${field.name}`, 1, ([ref]) => this.db.get(cls, ref)[field.name]);
    if (field.qualifier !== "RW") return;
    const kind = fieldKind(field.type);
    this.define(`${cls}.set_${field.name}`, 2, ([ref, value]) => {
      this.db.get(cls, ref);
      this.db.update(cls, String(ref), { [field.name]: coerce(field, value) });
      return "";
    });
    if (kind === "map") {
      this.define(`${cls}.add_to_${field.name}`, 3, ([ref, key, value]) => {
        const map = { ...(this.db.get(cls, ref)[field.name] as Record<string, unknown>) };
        if (typeof key !== "string") throw new XapiFailure("FIELD_TYPE_ERROR", "key");
        if (key in map) throw new XapiFailure("MAP_DUPLICATE_KEY", cls, field.name, String(ref), key);
        map[key] = String(value);
        this.db.update(cls, String(ref), { [field.name]: map });
        return "";
      });
      this.define(`${cls}.remove_from_${field.name}`, 2, ([ref, key]) => {
        const map = { ...(this.db.get(cls, ref)[field.name] as Record<string, unknown>) };
        delete map[String(key)];
        this.db.update(cls, String(ref), { [field.name]: map });
        return "";
      });
    } else if (kind === "set") {
      this.define(`${cls}.add_${field.name}`, 2, ([ref, value]) => {
        const set = [...(this.db.get(cls, ref)[field.name] as unknown[])];
        if (!set.includes(value)) set.push(value);
        this.db.update(cls, String(ref), { [field.name]: set });
        return "";
      });
      this.define(`${cls}.remove_${field.name}`, 2, ([ref, value]) => {
        const set = (this.db.get(cls, ref)[field.name] as unknown[]).filter((item) => item !== value);
        this.db.update(cls, String(ref), { [field.name]: set });
        return "";
      });
    }
  }

  private define(
    name: string,
    arity: MethodEntry["arity"],
    handler: Handler,
    options: { async?: boolean; needsSession?: boolean } = {},
  ): void {
    const cls = name.slice(0, name.indexOf("."));
    const isAccessor = /^[^.]+\.(get_|set_|add_|remove_)/.test(name);
    const defaultAsync = !isAccessor && cls !== "session" && cls !== "task" && cls !== "event" && cls !== "system";
    this.methods.set(name, { arity, handler, async: options.async ?? defaultAsync, needsSession: options.needsSession ?? true });
  }

  // -- session, event, task and the operations of the agent's job ----------------------------

  private registerSpecific(): void {
    this.define("session.login_with_password", [2, 4], (params) => this.login(params), { needsSession: false });
    this.define("session.logout", 0, (_params, { session }) => {
      this.db.remove("session", session);
      return "";
    });
    this.define("system.listMethods", 0, () => this.listMethods(), { needsSession: false });
    this.define("event.from", 3, (params) => eventFrom(this.db, params, () => this.closed));
    this.define("event.inject", 2, ([cls, ref]) => formatToken(this.db.touch(className(cls), String(ref))));
    this.define("event.get_current_id", 0, () => this.db.currentEventId);
    this.define("task.create", 2, ([label, description]) =>
      this.db.create("task", {
        name_label: String(label),
        name_description: String(description),
        status: "pending",
        created: xapiDateTime(new Date()),
      }),
    );
    this.define("task.destroy", 1, ([ref]) => {
      this.db.get("task", ref);
      this.db.remove("task", String(ref));
      return "";
    });
    this.define("task.cancel", 1, ([ref]) => {
      const task = this.db.get("task", ref);
      if (task.status !== "pending") throw new XapiFailure("OPERATION_NOT_ALLOWED", "task is not pending");
      this.db.update("task", String(ref), { status: "cancelled", finished: xapiDateTime(new Date()) });
      return "";
    });

    this.define("network.create", 1, ([record]) => this.operations.createNetwork(asRecord(record, "args")));
    this.define("network.destroy", 1, ([ref]) => this.operations.destroyNetwork(ref));
    this.define("VLAN.create", 3, async ([pif, tag, network]) => {
      const vlan = this.operations.createVlan(pif, tag, network);
      await this.operations.plugVlan(vlan);
      return vlan;
    });
    this.define("VLAN.destroy", 1, ([ref]) => this.operations.destroyVlan(ref));
    this.define("pool.create_VLAN_from_PIF", 3, async ([pif, network, tag]) => {
      const pifs = this.operations.createVlanFromPif(pif, network, tag);
      for (const untagged of pifs) await this.operations.plugVlan(String(this.db.get("PIF", untagged).VLAN_master_of));
      return pifs;
    });
    this.define("host.get_management_interface", 1, ([host]) => this.operations.managementInterface(host));

    this.define("VIF.create", 1, ([record]) => this.operations.createVif(asRecord(record, "args")));
    this.define("VIF.destroy", 1, ([ref]) => this.operations.destroyVif(ref));
    this.define("VIF.plug", 1, ([ref]) => this.operations.plugVif(ref));
    this.define("VIF.unplug", 1, ([ref]) => this.operations.unplugVif(ref));
    this.define("VIF.unplug_force", 1, ([ref]) => this.operations.unplugVif(ref));

    this.define("VM.get_allowed_VIF_devices", 1, ([ref]) => this.operations.allowedVifDevices(ref));
    this.define("VM.start", 3, ([ref]) => this.operations.startVm(ref));
    this.define("VM.start_on", 4, ([ref, host]) => this.operations.startVm(ref, host));
    this.define("VM.hard_shutdown", 1, ([ref]) => this.operations.shutdownVm(ref));
    this.define("VM.clean_shutdown", 1, ([ref]) => this.operations.shutdownVm(ref));
    this.define("VM.shutdown", 1, ([ref]) => this.operations.shutdownVm(ref));
    this.define("VM.clean_reboot", 1, ([ref]) => this.operations.rebootVm(ref));
    this.define("VM.hard_reboot", 1, ([ref]) => this.operations.rebootVm(ref));
    this.define("VM.pool_migrate", 3, ([ref, host]) => this.operations.migrateVm(ref, host));
  }
}

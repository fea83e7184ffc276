import { randomUUID } from "node:crypto";
import { type Database, newRef, type XapiRecord, xapiDateTime } from "./database.js";
import { classSpec, dataModel, type FieldSpec, fieldKind, NULL_REF } from "./datamodel.js";
import type { Dom0Network, Dom0Vif } from "./dom0.js";
import { XapiFailure } from "./failure.js";
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

/** The guest NIC devices a VM may use (XAPI: 0–6 for a VM without PV-aware device tables). */
const ALLOWED_VIF_DEVICES = ["0", "1", "2", "3", "4", "5", "6"];

export interface SimulatorOptions {
  /** Accepted credentials; default `{ root: "xenroot" }`. */
  users?: Record<string, string>;
  dom0?: Dom0Network;
  /** Milliseconds an `Async.*` task stays pending before it runs (default 20). */
  asyncDelayMs?: number;
}

/**
 * XAPI's behaviour without the wire: sessions, the generic per-class accessors derived from
 * the data model, the constructors and operations the agent uses, `event.from`/`event.inject`
 * and `Async.*` tasks. `server.ts` puts it on HTTP(S).
 */
export class XapiSimulator {
  private readonly methods = new Map<string, MethodEntry>();
  private readonly users: Record<string, string>;
  private nextDomid = 1;
  private closed = false;
  readonly asyncDelayMs: number;
  dom0: Dom0Network | undefined;

  constructor(
    readonly db: Database,
    options: SimulatorOptions = {},
  ) {
    this.users = options.users ?? { root: "xenroot" };
    this.dom0 = options.dom0;
    this.asyncDelayMs = options.asyncDelayMs ?? 20;
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

  private async eventFrom(params: unknown[]): Promise<unknown> {
    const [classesParam, tokenParam, timeoutParam] = params;
    if (!Array.isArray(classesParam) || !classesParam.every((item) => typeof item === "string")) {
      throw new XapiFailure("FIELD_TYPE_ERROR", "classes");
    }
    const classes = new Set(classesParam.map((item) => item.toLowerCase()));
    const after = parseToken(tokenParam);
    const timeoutMs = Math.max(0, Math.min(Number(timeoutParam) || 0, 3600)) * 1000;
    let events = after === undefined ? this.snapshotEvents(classes) : this.db.eventsAfter(after, classes);
    if (events.length === 0 && after !== undefined) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, timeoutMs);
        const unwatch = this.db.watch(() => {
          if (this.closed || this.db.eventsAfter(after, classes).length > 0) done();
        });
        function done(): void {
          clearTimeout(timer);
          unwatch();
          resolve();
        }
      });
      events = this.db.eventsAfter(after, classes);
    }
    // Like XAPI, one batch carries each object once, at its latest state.
    const latest = new Map<string, (typeof events)[number]>();
    for (const event of events) {
      latest.delete(event.ref);
      latest.set(event.ref, event);
    }
    const validRefCounts: Record<string, number> = {};
    for (const cls of dataModel().keys()) {
      if (classes.has("*") || classes.has(cls.toLowerCase())) validRefCounts[cls.toLowerCase()] = this.db.count(cls);
    }
    return {
      events: [...latest.values()].map((event) => ({
        id: event.id,
        timestamp: event.timestamp,
        class: event.className,
        operation: event.operation,
        ref: event.ref,
        ...(event.operation === "del" ? {} : { snapshot: this.currentOr(event) }),
      })),
      valid_ref_counts: validRefCounts,
      token: formatToken(this.db.currentEventId),
    };
  }

  /** An empty token asks for every current object as an `add`. */
  private snapshotEvents(classes: ReadonlySet<string>) {
    const events = [];
    for (const cls of dataModel().keys()) {
      if (!classes.has("*") && !classes.has(cls.toLowerCase())) continue;
      for (const [ref, record] of this.db.all(cls)) {
        events.push({
          id: this.db.currentEventId,
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

  private currentOr(event: { className: string; ref: string; snapshot: XapiRecord | undefined }): XapiRecord | undefined {
    const cls = [...dataModel().keys()].find((name) => name.toLowerCase() === event.className);
    if (cls !== undefined && this.db.has(cls, event.ref)) return structuredClone(this.db.get(cls, event.ref));
    return event.snapshot;
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

  // -- the constructors and operations of the agent's job -------------------------------------

  private registerSpecific(): void {
    this.define("session.login_with_password", [2, 4], (params) => this.login(params), { needsSession: false });
    this.define("session.logout", 0, (_params, { session }) => {
      this.db.remove("session", session);
      return "";
    });
    this.define("system.listMethods", 0, () => this.listMethods(), { needsSession: false });
    this.define("event.from", 3, (params) => this.eventFrom(params));
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

    this.define("network.create", 1, ([record]) => this.createNetwork(asRecord(record, "args")));
    this.define("network.destroy", 1, ([ref]) => this.destroyNetwork(ref));
    this.define("VLAN.create", 3, async ([pif, tag, network]) => {
      const vlan = this.createVlan(pif, tag, network);
      await this.plugVlan(vlan);
      return vlan;
    });
    this.define("VLAN.destroy", 1, ([ref]) => this.destroyVlan(ref));
    this.define("pool.create_VLAN_from_PIF", 3, async ([pif, network, tag]) => {
      const pifs = this.createVlanFromPif(pif, network, tag);
      for (const untagged of pifs) await this.plugVlan(String(this.db.get("PIF", untagged).VLAN_master_of));
      return pifs;
    });
    this.define("host.get_management_interface", 1, ([host]) => {
      this.db.get("host", host);
      const found = this.db.find("PIF", (pif) => pif.host === host && pif.management === true);
      if (found === undefined) throw new XapiFailure("PIF_NOT_PRESENT", String(host), "management");
      return found[0];
    });

    this.define("VIF.create", 1, ([record]) => this.createVif(asRecord(record, "args")));
    this.define("VIF.destroy", 1, ([ref]) => this.destroyVif(ref));
    this.define("VIF.plug", 1, ([ref]) => this.plugVif(ref));
    this.define("VIF.unplug", 1, ([ref]) => this.unplugVif(ref));
    this.define("VIF.unplug_force", 1, ([ref]) => this.unplugVif(ref));

    this.define("VM.get_allowed_VIF_devices", 1, ([ref]) => {
      const vm = this.db.get("VM", ref);
      const used = new Set((vm.VIFs as string[]).map((vif) => this.db.get("VIF", vif).device));
      return ALLOWED_VIF_DEVICES.filter((device) => !used.has(device));
    });
    this.define("VM.start", 3, ([ref]) => this.startVm(ref));
    this.define("VM.start_on", 4, ([ref, host]) => this.startVm(ref, host));
    this.define("VM.hard_shutdown", 1, ([ref]) => this.shutdownVm(ref));
    this.define("VM.clean_shutdown", 1, ([ref]) => this.shutdownVm(ref));
    this.define("VM.shutdown", 1, ([ref]) => this.shutdownVm(ref));
    this.define("VM.clean_reboot", 1, ([ref]) => this.rebootVm(ref));
    this.define("VM.hard_reboot", 1, ([ref]) => this.rebootVm(ref));
  }

  createNetwork(args: XapiRecord): string {
    const fields = constructorFields("network", args);
    if (fields.bridge === "" || fields.bridge === undefined) fields.bridge = this.nextBridgeName();
    return this.db.create("network", fields);
  }

  private destroyNetwork(ref: unknown): string {
    const network = this.db.get("network", ref);
    if ((network.VIFs as string[]).length > 0) throw new XapiFailure("NETWORK_CONTAINS_VIF", ...(network.VIFs as string[]));
    if ((network.PIFs as string[]).length > 0) throw new XapiFailure("NETWORK_CONTAINS_PIF", ...(network.PIFs as string[]));
    this.db.remove("network", String(ref));
    return "";
  }

  createVlan(pifRef: unknown, tagParam: unknown, networkRef: unknown): string {
    const tagged = this.db.get("PIF", pifRef);
    const network = this.db.get("network", networkRef);
    const tag = toInt(tagParam, "tag");
    if (tag < 0 || tag > 4094) throw new XapiFailure("VLAN_TAG_INVALID", tag);
    if (tagged.VLAN_master_of !== NULL_REF && tagged.VLAN_master_of !== "Null") throw new XapiFailure("PIF_IS_VLAN", String(pifRef));
    for (const vlanRef of tagged.VLAN_slave_of as string[]) {
      if (this.db.get("VLAN", vlanRef).tag === tag) throw new XapiFailure("PIF_VLAN_EXISTS", String(tagged.device));
    }
    const vlan = newRef();
    const untagged = this.db.create("PIF", {
      device: tagged.device,
      network: networkRef,
      host: tagged.host,
      MAC: tagged.MAC,
      MTU: tagged.MTU,
      VLAN: tag,
      physical: false,
      currently_attached: false,
      VLAN_master_of: vlan,
    });
    this.db.create("VLAN", { tagged_PIF: pifRef, untagged_PIF: untagged, tag }, vlan);
    this.db.update("PIF", String(pifRef), { VLAN_slave_of: [...(tagged.VLAN_slave_of as string[]), vlan] });
    this.db.update("network", String(networkRef), { PIFs: [...(network.PIFs as string[]), untagged] });
    const host = this.db.get("host", tagged.host);
    this.db.update("host", String(tagged.host), { PIFs: [...(host.PIFs as string[]), untagged] });
    return vlan;
  }

  /** PIF.plug of a VLAN's untagged PIF: dom0 gets `<device>.<tag>` on the network's bridge. */
  private async plugVlan(vlanRef: string): Promise<void> {
    const vlan = this.db.get("VLAN", vlanRef);
    const untagged = this.db.get("PIF", vlan.untagged_PIF);
    const tagged = this.db.get("PIF", vlan.tagged_PIF);
    const network = this.db.get("network", untagged.network);
    await this.dom0?.vlanPlugged?.({ device: String(tagged.device), tag: Number(vlan.tag), bridge: String(network.bridge) });
    this.db.update("PIF", String(vlan.untagged_PIF), { currently_attached: true });
  }

  private async destroyVlan(ref: unknown): Promise<string> {
    const vlan = this.db.get("VLAN", ref);
    const untagged = this.db.get("PIF", vlan.untagged_PIF);
    const network = this.db.get("network", untagged.network);
    const tagged = this.db.get("PIF", vlan.tagged_PIF);
    await this.dom0?.vlanUnplugged?.({ device: String(tagged.device), tag: Number(vlan.tag), bridge: String(network.bridge) });
    this.db.update("network", String(untagged.network), { PIFs: (network.PIFs as string[]).filter((pif) => pif !== vlan.untagged_PIF) });
    this.db.update("PIF", String(vlan.tagged_PIF), { VLAN_slave_of: (tagged.VLAN_slave_of as string[]).filter((item) => item !== ref) });
    const host = this.db.get("host", untagged.host);
    this.db.update("host", String(untagged.host), { PIFs: (host.PIFs as string[]).filter((pif) => pif !== vlan.untagged_PIF) });
    this.db.remove("PIF", String(vlan.untagged_PIF));
    this.db.remove("VLAN", String(ref));
    return "";
  }

  /** A VLAN on every host's PIF with the same device as `pif` (a pool-wide VLAN). */
  private createVlanFromPif(pifRef: unknown, networkRef: unknown, tag: unknown): string[] {
    const pif = this.db.get("PIF", pifRef);
    this.db.get("network", networkRef);
    const tagNumber = toInt(tag, "VLAN");
    if (tagNumber < 0 || tagNumber > 4094) throw new XapiFailure("VLAN_TAG_INVALID", tagNumber);
    const peers = this.db.all("PIF").filter(([, other]) => other.device === pif.device && other.physical === true);
    return peers.map(([ref]) => this.db.get("VLAN", this.createVlan(ref, tagNumber, networkRef)).untagged_PIF as string);
  }

  createVif(args: XapiRecord): string {
    const fields = constructorFields("VIF", args);
    const vm = this.db.get("VM", fields.VM);
    const network = this.db.get("network", fields.network);
    const device = String(fields.device);
    if (!/^\d+$/.test(device)) throw new XapiFailure("INVALID_DEVICE", device);
    for (const vifRef of vm.VIFs as string[]) {
      if (this.db.get("VIF", vifRef).device === device) throw new XapiFailure("DEVICE_ALREADY_EXISTS", device);
    }
    if (!ALLOWED_VIF_DEVICES.includes(device)) throw new XapiFailure("INVALID_DEVICE", device);
    let mac = String(fields.MAC ?? "");
    let autogenerated = false;
    if (mac === "") {
      mac = randomMac();
      autogenerated = true;
    } else if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) {
      throw new XapiFailure("MAC_INVALID", mac);
    }
    const vif = this.db.create("VIF", {
      ...fields,
      device,
      MAC: mac.toLowerCase(),
      MAC_autogenerated: autogenerated,
      currently_attached: false,
      MTU: Number(fields.MTU) || Number(network.MTU) || 1500,
    });
    this.db.update("VM", String(fields.VM), { VIFs: [...(vm.VIFs as string[]), vif] });
    this.db.update("network", String(fields.network), { VIFs: [...(network.VIFs as string[]), vif] });
    return vif;
  }

  private destroyVif(ref: unknown): string {
    const vif = this.db.get("VIF", ref);
    const vm = this.db.get("VM", vif.VM);
    if (vif.currently_attached === true && vm.power_state === "Running") {
      throw new XapiFailure("OPERATION_NOT_ALLOWED", "VIF is currently attached; unplug it first");
    }
    const network = this.db.get("network", vif.network);
    this.db.update("VM", String(vif.VM), { VIFs: (vm.VIFs as string[]).filter((item) => item !== ref) });
    this.db.update("network", String(vif.network), { VIFs: (network.VIFs as string[]).filter((item) => item !== ref) });
    this.db.remove("VIF", String(ref));
    return "";
  }

  private async plugVif(ref: unknown): Promise<string> {
    const vif = this.db.get("VIF", ref);
    const vm = this.db.get("VM", vif.VM);
    if (vm.power_state !== "Running")
      throw new XapiFailure("VM_BAD_POWER_STATE", String(vif.VM), "running", String(vm.power_state).toLowerCase());
    if (vif.currently_attached === true) throw new XapiFailure("DEVICE_ALREADY_ATTACHED", String(ref));
    await this.dom0?.vifPlugged(this.dom0Vif(String(ref)));
    this.db.update("VIF", String(ref), { currently_attached: true });
    return "";
  }

  private async unplugVif(ref: unknown): Promise<string> {
    const vif = this.db.get("VIF", ref);
    if (vif.currently_attached !== true) throw new XapiFailure("DEVICE_ALREADY_DETACHED", String(ref));
    await this.dom0?.vifUnplugged(this.dom0Vif(String(ref)));
    this.db.update("VIF", String(ref), { currently_attached: false });
    return "";
  }

  private async startVm(ref: unknown, hostParam?: unknown): Promise<string> {
    const vm = this.db.get("VM", ref);
    if (vm.is_a_template === true) throw new XapiFailure("VM_IS_TEMPLATE", String(ref), "start");
    if (vm.power_state !== "Halted")
      throw new XapiFailure("VM_BAD_POWER_STATE", String(ref), "halted", String(vm.power_state).toLowerCase());
    const hostRef = hostParam === undefined ? (this.db.all("host")[0]?.[0] ?? NULL_REF) : hostParam;
    this.db.get("host", hostRef);
    const domid = this.nextDomid++;
    this.db.update("VM", String(ref), { power_state: "Running", domid, resident_on: hostRef });
    const host = this.db.get("host", hostRef);
    this.db.update("host", String(hostRef), { resident_VMs: [...(host.resident_VMs as string[]), ref] });
    for (const vif of vm.VIFs as string[]) {
      await this.dom0?.vifPlugged(this.dom0Vif(vif));
      this.db.update("VIF", vif, { currently_attached: true });
    }
    return "";
  }

  private async shutdownVm(ref: unknown): Promise<string> {
    const vm = this.db.get("VM", ref);
    if (vm.power_state !== "Running")
      throw new XapiFailure("VM_BAD_POWER_STATE", String(ref), "running", String(vm.power_state).toLowerCase());
    for (const vif of vm.VIFs as string[]) {
      if (this.db.get("VIF", vif).currently_attached !== true) continue;
      await this.dom0?.vifUnplugged(this.dom0Vif(vif));
      this.db.update("VIF", vif, { currently_attached: false });
    }
    const hostRef = String(vm.resident_on);
    if (this.db.has("host", hostRef)) {
      const host = this.db.get("host", hostRef);
      this.db.update("host", hostRef, { resident_VMs: (host.resident_VMs as string[]).filter((item) => item !== ref) });
    }
    this.db.update("VM", String(ref), { power_state: "Halted", domid: -1, resident_on: NULL_REF });
    return "";
  }

  /** A reboot destroys the domain and builds a new one: same VM, new domid, new dom0 devices. */
  private async rebootVm(ref: unknown): Promise<string> {
    await this.shutdownVm(ref);
    return this.startVm(ref);
  }

  private dom0Vif(vifRef: string): Dom0Vif {
    const vif = this.db.get("VIF", vifRef);
    const vm = this.db.get("VM", vif.VM);
    const network = this.db.get("network", vif.network);
    return {
      vmUuid: String(vm.uuid),
      domid: Number(vm.domid),
      device: String(vif.device),
      ifname: `vif${vm.domid}.${vif.device}`,
      bridge: String(network.bridge),
      mac: String(vif.MAC),
      mtu: Number(vif.MTU) || 1500,
    };
  }

  private nextBridgeName(): string {
    const used = new Set(this.db.all("network").map(([, record]) => record.bridge));
    for (let index = 0; ; index++) if (!used.has(`xapi${index}`)) return `xapi${index}`;
  }
}

/** Tokens look like XAPI's: `<event id, 20 digits>,<20 digits>`; an empty token means "from now, everything". */
export function formatToken(id: number): string {
  return `${String(id).padStart(20, "0")},${"0".repeat(20)}`;
}

function parseToken(token: unknown): number | undefined {
  if (token === "" || token === undefined) return undefined;
  const match = typeof token === "string" ? /^(\d+)(,\d+)?$/.exec(token) : null;
  if (match === null) throw new XapiFailure("EVENT_FROM_TOKEN_PARSE_FAILURE", String(token));
  return Number(match[1]);
}

function className(cls: unknown): string {
  const wanted = String(cls).toLowerCase();
  const found = [...dataModel().keys()].find((name) => name.toLowerCase() === wanted);
  if (found === undefined) throw new XapiFailure("HANDLE_INVALID", String(cls), "");
  return found;
}

/** The fields a constructor takes: its RW and RO/constructor fields; those without a default are required. */
function constructorFields(cls: string, args: XapiRecord): XapiRecord {
  const fields: XapiRecord = {};
  for (const field of classSpec(cls).fields) {
    if (field.qualifier === "RO/runtime") continue;
    if (field.name in args) {
      fields[field.name] = coerce(field, args[field.name]);
    } else if (field.default === null) {
      throw new XapiFailure("FIELD_TYPE_ERROR", field.name);
    }
  }
  return fields;
}

function coerce(field: FieldSpec, value: unknown): unknown {
  switch (fieldKind(field.type)) {
    case "int":
      return toInt(value, field.name);
    case "bool":
      if (typeof value !== "boolean") throw new XapiFailure("FIELD_TYPE_ERROR", field.name);
      return value;
    case "set":
      if (!Array.isArray(value)) throw new XapiFailure("FIELD_TYPE_ERROR", field.name);
      return value;
    case "map":
      if (value === null || typeof value !== "object" || Array.isArray(value)) throw new XapiFailure("FIELD_TYPE_ERROR", field.name);
      return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([key, item]) => [key, String(item)]));
    default:
      if (typeof value !== "string") throw new XapiFailure("FIELD_TYPE_ERROR", field.name);
      return value;
  }
}

/** XAPI ints are 64-bit; over JSON-RPC they arrive as numbers, XML-RPC style clients send strings. */
function toInt(value: unknown, field: string): number {
  if (typeof value === "number" && Number.isInteger(value)) return value;
  if (typeof value === "string" && /^-?\d+$/.test(value)) return Number(value);
  throw new XapiFailure("FIELD_TYPE_ERROR", field);
}

function asRecord(value: unknown, field: string): XapiRecord {
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new XapiFailure("FIELD_TYPE_ERROR", field);
  return value as XapiRecord;
}

function randomMac(): string {
  const bytes = randomUUID().replace(/-/g, "").slice(0, 10).match(/../g) as string[];
  return ["02", ...bytes].join(":");
}

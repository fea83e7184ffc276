import type { XapiObject } from "xen-api";
import { type InterfaceName, type Mac, parseInterfaceName, parseMac } from "../../addressing/index.js";
import { InvalidArgumentError, V6Error } from "../../errors.js";
import { KeyedLock } from "../../keyed-lock.js";
import type { Logger } from "../../log.js";
import type { Hypervisor, HypervisorEvent, HypervisorFacts, NicSpec, VmInfo, VmNic, VmSpec, VmState } from "../hypervisor.js";
import { vifDeviceName } from "./device-name.js";
import { assertBridgeBackend, networkBackendOf, type XenNetworkBackend } from "./network-backend.js";
import { CACHED_FIELDS, type HostRecord, type NetworkRecord, type Ref, type VifRecord, type VmRecord } from "./records.js";
import { ensureSharedNetwork, type SharedNetwork, type SharedNetworkRequest } from "./shared-network.js";
import { VmEventTracker } from "./vm-events.js";
import { XapiConnection, type XapiConnectionOptions } from "./xapi-connection.js";

/** The classes whose events the backend follows (plus `task`, which `Async.*` calls need). */
export const WATCHED_CLASSES = ["VM", "VIF", "network", "PIF", "VLAN", "host", "task"] as const;

export interface XenServerOptions extends Omit<XapiConnectionOptions, "watch" | "cachedFields"> {
  /** This dom0's host (`INSTALLATION_UUID` of /etc/xensource-inventory); default: the only host. */
  hostUuid?: string;
  /** Refuse an Open vSwitch host on connect (default true: our filtering cannot work there). */
  requireBridgeBackend?: boolean;
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The XenServer / XCP-ng backend (design section 5): XAPI through the `xen-api` client, typed by
 * our records, events from the client's `event.from`-fed object cache.
 */
export class XenServerHypervisor implements Hypervisor {
  readonly kind = "xenserver" as const;
  readonly connection: XapiConnection;
  private readonly listeners = new Set<(event: HypervisorEvent) => void>();
  private readonly tracker = new VmEventTracker((event) => this.dispatch(event));
  private hostRef: Ref | undefined;
  private readonly log: Logger | undefined;
  /**
   * VMs this backend has written to (VIFs created, plugged, unplugged, destroyed; power changes)
   * whose cached view may still lag behind: the cache follows `event.from`, which the client
   * polls after a pause, so a `VIF.plug` that just returned is not in it yet. Until the cache
   * shows what XAPI shows, such a VM is read from XAPI (read-your-writes).
   */
  private readonly unsettled = new Set<Ref>();
  /** Shared-network changes go one at a time: they read-modify-write pool-wide XAPI maps. */
  private readonly networkLock = new KeyedLock();

  constructor(private readonly options: XenServerOptions) {
    if (options.hostUuid !== undefined && !UUID_PATTERN.test(options.hostUuid)) {
      throw new InvalidArgumentError("hostUuid", `${JSON.stringify(options.hostUuid)} is not a UUID`);
    }
    this.log = options.logger?.child({ component: "xenserver" });
    this.connection = new XapiConnection({
      ...options,
      watch: WATCHED_CLASSES,
      cachedFields: CACHED_FIELDS,
      ...(this.log ? { logger: this.log } : {}),
    });
    this.connection.on("connection-lost", (reason) => this.dispatch({ type: "connection-lost", reason }));
    this.connection.on("connection-restored", () => this.dispatch({ type: "connection-restored" }));
  }

  async connect(): Promise<void> {
    await this.connection.connect();
    const host = this.host();
    if (this.options.requireBridgeBackend ?? true) {
      try {
        assertBridgeBackend(host);
      } catch (error) {
        await this.connection.close();
        throw error;
      }
    }
    const objects = this.connection.client.objects;
    this.tracker.prime(Object.values(objects.all));
    objects.on("add", (items) => this.tracker.update(present(items)));
    objects.on("update", (items) => this.tracker.update(present(items)));
    objects.on("remove", (items) => this.tracker.remove(Object.keys(items)));
    this.log?.info({ host: host.uuid, backend: networkBackendOf(host) }, "connected to XAPI");
  }

  async close(): Promise<void> {
    await this.connection.close();
  }

  /** The host's network backend (`host.software_version.network_backend`). */
  networkBackend(): XenNetworkBackend {
    return networkBackendOf(this.host());
  }

  async facts(): Promise<HypervisorFacts> {
    const host = this.host();
    return {
      kind: "xenserver",
      hostname: host.hostname,
      hypervisorVersion: host.software_version.product_version ?? "unknown",
      libraryVersion: `XAPI ${host.API_version_major}.${host.API_version_minor}`,
    };
  }

  async listVms(): Promise<VmInfo[]> {
    const vms = this.connection.cached<VmRecord>("VM").filter((vm) => !vm.is_a_template && !vm.is_control_domain && !vm.is_a_snapshot);
    const infos = await Promise.all(vms.map((vm) => (this.unsettled.has(vm.$ref) ? this.settledInfo(vm.$ref) : this.vmInfo(vm))));
    return infos.filter((info): info is VmInfo => info !== undefined);
  }

  async getVm(uuid: string): Promise<VmInfo> {
    const vm = await this.vmByUuid(uuid);
    if (!this.unsettled.has(vm.$ref)) return this.vmInfo(vm);
    const info = await this.settledInfo(vm.$ref);
    if (info === undefined) throw new V6Error("not_found", `no VM with UUID ${uuid}`, { field: "uuid" });
    return info;
  }

  async deployVm(_spec: VmSpec): Promise<VmInfo> {
    throw new V6Error("not_implemented", "XenServer VMs are created from templates by the cloud, not by the agent");
  }

  async startVm(uuid: string): Promise<void> {
    const vm = await this.vmByUuid(uuid);
    this.unsettled.add(vm.$ref);
    await this.connection.callAsync("VM.start", vm.$ref, false, false);
  }

  async stopVm(uuid: string, options: { force?: boolean } = {}): Promise<void> {
    const vm = await this.vmByUuid(uuid);
    this.unsettled.add(vm.$ref);
    await this.connection.callAsync(options.force ? "VM.hard_shutdown" : "VM.clean_shutdown", vm.$ref);
  }

  async destroyVm(_uuid: string): Promise<void> {
    throw new V6Error("not_implemented", "XenServer VMs are destroyed by the cloud through XAPI, not by the agent");
  }

  /**
   * `VIF.create` at the NIC index asked for (or the lowest allowed one) on the network whose
   * bridge is `nic.bridge`, then `VIF.plug` when the VM runs. The returned NIC names the dom0
   * device so the caller can protect it.
   */
  async attachNic(uuid: string, nic: NicSpec): Promise<VmNic> {
    const mac = parseMac(nic.mac, "mac");
    const bridge = parseInterfaceName(nic.bridge, "bridge");
    if (nic.index !== undefined && (!Number.isInteger(nic.index) || nic.index < 0 || nic.index > 15)) {
      throw new InvalidArgumentError("index", `VIF device ${nic.index} is out of range (0–15)`);
    }
    // From XAPI, not the cache: a VIF this backend created a moment ago must count here.
    const vm = await this.vmByUuid(uuid, "xapi");
    const network = await this.networkByBridge(bridge);
    if (network === undefined) throw new V6Error("not_found", `no XAPI network has bridge ${bridge}`, { field: "bridge" });
    if ((await this.vifsOf(vm, "xapi")).some((vif) => vif.MAC === mac))
      throw new V6Error("conflict", `VM ${uuid} already has a VIF with MAC ${mac}`, { field: "mac" });
    const allowed = await this.connection.call<string[]>("VM.get_allowed_VIF_devices", vm.$ref);
    const device = nic.index === undefined ? allowed.map(Number).sort((a, b) => a - b)[0] : nic.index;
    if (device === undefined || !allowed.includes(String(device))) {
      throw new V6Error(
        "conflict",
        `VM ${uuid} has no free VIF device${nic.index === undefined ? "" : ` ${nic.index}`} (allowed: ${allowed.join(", ") || "none"})`,
        {
          field: "index",
        },
      );
    }
    this.unsettled.add(vm.$ref);
    const vifRef = await this.connection.call<Ref>("VIF.create", {
      device: String(device),
      network: network.$ref,
      VM: vm.$ref,
      MAC: mac,
      MTU: network.MTU,
      other_config: { "v6agent:managed": "true" },
      qos_algorithm_type: "",
      qos_algorithm_params: {},
    });
    const running = vm.power_state === "Running";
    if (running) {
      try {
        await this.connection.call("VIF.plug", vifRef);
      } catch (error) {
        await this.connection.call("VIF.destroy", vifRef).catch(() => undefined);
        throw error;
      }
    }
    const domid = (await this.connection.call<number>("VM.get_domid", vm.$ref)) ?? vm.domid;
    return nicOf({ device: String(device), MAC: mac, currently_attached: running }, domid, bridge, isHvm(vm));
  }

  /** Unplugs (when attached) and destroys the VM's VIF with this MAC. */
  async detachNic(uuid: string, macInput: Mac): Promise<void> {
    const mac = parseMac(macInput, "mac");
    const vm = await this.vmByUuid(uuid, "xapi");
    const vif = (await this.vifsOf(vm, "xapi")).find((candidate) => candidate.MAC === mac);
    if (vif === undefined) throw new V6Error("not_found", `VM ${uuid} has no VIF with MAC ${mac}`, { field: "mac" });
    this.unsettled.add(vm.$ref);
    if (vif.currently_attached) await this.connection.call("VIF.unplug", vif.$ref);
    await this.connection.call("VIF.destroy", vif.$ref);
  }

  /** XenServer-specific: the XAPI network (and VLAN) for a shared /64 on this host. */
  async ensureSharedNetwork(request: SharedNetworkRequest): Promise<SharedNetwork> {
    return this.networkLock.run("networks", () => ensureSharedNetwork(this.connection, this.host().$ref, request, this.log));
  }

  onEvent(listener: (event: HypervisorEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private dispatch(event: HypervisorEvent): void {
    for (const listener of [...this.listeners]) listener(event);
  }

  private host(): HostRecord & XapiObject {
    const hosts = this.connection.cached<HostRecord>("host");
    if (this.hostRef !== undefined) {
      const host = this.connection.cachedByRef<HostRecord>(this.hostRef);
      if (host !== undefined) return host;
    }
    const wanted = this.options.hostUuid;
    const host = wanted === undefined ? (hosts.length === 1 ? hosts[0] : undefined) : hosts.find((candidate) => candidate.uuid === wanted);
    if (host === undefined) {
      throw new V6Error(
        wanted === undefined ? "invalid_argument" : "not_found",
        wanted === undefined ? `the pool has ${hosts.length} hosts; set hostUuid to this dom0's host` : `XAPI has no host ${wanted}`,
        { field: "hostUuid" },
      );
    }
    this.hostRef = host.$ref;
    return host;
  }

  /**
   * The VM from the event-fed cache, or straight from XAPI when the cache has not caught up yet
   * (a VM created a moment ago): callers never see a not_found that is only event lag. With
   * `"xapi"` the record is always read from XAPI (the ref may still come from the cache).
   */
  private async vmByUuid(uuid: string, source: RecordSource = "cache"): Promise<VmRecord & XapiObject> {
    if (typeof uuid !== "string" || !UUID_PATTERN.test(uuid))
      throw new InvalidArgumentError("uuid", `${JSON.stringify(uuid)} is not a VM UUID`);
    const wanted = uuid.toLowerCase();
    const cached = this.connection.cached<VmRecord>("VM").find((candidate) => candidate.uuid === wanted);
    const ref = cached?.$ref ?? (await this.refByUuid("VM", wanted));
    const vm = source === "cache" && cached !== undefined ? cached : await this.fetch<VmRecord>("VM", ref, source);
    if (vm === undefined || vm.is_a_template || vm.is_control_domain)
      throw new V6Error("not_found", `no VM with UUID ${uuid}`, { field: "uuid" });
    return vm;
  }

  /**
   * An unsettled VM read from XAPI; once the cache shows the same, the VM is settled and read
   * from the cache again. Undefined when XAPI no longer has it.
   */
  private async settledInfo(ref: Ref): Promise<VmInfo | undefined> {
    const vm = await this.fetch<VmRecord>("VM", ref, "xapi");
    if (vm === undefined) {
      this.unsettled.delete(ref);
      return undefined;
    }
    const fresh = await this.vmInfo(vm, "xapi");
    const cached = this.connection.cachedByRef<VmRecord>(ref);
    if (cached !== undefined && sameVmInfo(await this.vmInfo(cached), fresh)) this.unsettled.delete(ref);
    return fresh;
  }

  private async refByUuid(type: string, uuid: string): Promise<Ref | undefined> {
    try {
      return await this.connection.call<Ref>(`${type}.get_by_uuid`, uuid);
    } catch (error) {
      if ((error as { xapiCode?: string }).xapiCode === "UUID_INVALID") return undefined;
      throw error;
    }
  }

  /** A record from the cache (unless `source` is `"xapi"`), else from XAPI (undefined when XAPI does not know the ref). */
  private async fetch<T>(type: string, ref: Ref | undefined, source: RecordSource = "cache"): Promise<(T & XapiObject) | undefined> {
    if (ref === undefined) return undefined;
    const cached = source === "cache" ? this.connection.cachedByRef<T>(ref) : undefined;
    if (cached !== undefined) return cached;
    try {
      const record = await this.connection.call<T & { uuid?: string }>(`${type}.get_record`, ref);
      return { ...record, $ref: ref, $id: record.uuid ?? ref, $type: type } as T & XapiObject;
    } catch (error) {
      if ((error as { xapiCode?: string }).xapiCode === "HANDLE_INVALID") return undefined;
      throw error;
    }
  }

  private async networkByBridge(bridge: string): Promise<(NetworkRecord & XapiObject) | undefined> {
    const cached = this.connection.cached<NetworkRecord>("network").find((candidate) => candidate.bridge === bridge);
    if (cached !== undefined) return cached;
    const all = await this.connection.call<Record<Ref, NetworkRecord>>("network.get_all_records");
    const found = Object.entries(all).find(([, network]) => network.bridge === bridge);
    return found === undefined
      ? undefined
      : ({ ...found[1], $ref: found[0], $id: found[1].uuid, $type: "network" } as NetworkRecord & XapiObject);
  }

  private async vifsOf(vm: VmRecord, source: RecordSource = "cache"): Promise<(VifRecord & XapiObject)[]> {
    const vifs = await Promise.all(vm.VIFs.map((ref) => this.fetch<VifRecord>("VIF", ref, source)));
    return vifs.filter((vif): vif is VifRecord & XapiObject => vif !== undefined);
  }

  private async vmInfo(vm: VmRecord & XapiObject, source: RecordSource = "cache"): Promise<VmInfo> {
    const running = vm.power_state === "Running" && vm.domid >= 0;
    const vifs = await this.vifsOf(vm, source);
    const nics = await Promise.all(
      vifs.map(async (vif) => {
        const network = await this.fetch<NetworkRecord>("network", vif.network);
        return nicOf(vif, running ? vm.domid : -1, network?.bridge, isHvm(vm));
      }),
    );
    nics.sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
    return { uuid: vm.uuid, name: vm.name_label, state: stateOf(vm.power_state), domainId: vm.domid, nics };
  }
}

/** Where a read goes: the event-fed cache (falling back to XAPI), or XAPI itself. */
type RecordSource = "cache" | "xapi";

function sameVmInfo(a: VmInfo, b: VmInfo): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function present(items: Record<string, XapiObject | undefined>): XapiObject[] {
  return Object.values(items).filter((item): item is XapiObject => item !== undefined);
}

function nicOf(
  vif: Pick<VifRecord, "device" | "MAC" | "currently_attached">,
  domid: number,
  bridge: string | undefined,
  hvm: boolean,
): VmNic {
  const attached = vif.currently_attached && domid >= 0;
  const device: InterfaceName | undefined = attached ? vifDeviceName(domid, vif.device) : undefined;
  return {
    mac: parseMac(vif.MAC, "VIF.MAC"),
    device,
    ...(attached && hvm ? { emulatedDevice: vifDeviceName(domid, vif.device, "emulated") } : {}),
    bridge,
    model: "netfront",
    index: Number(vif.device),
  };
}

function isHvm(vm: VmRecord): boolean {
  return vm.domain_type === "hvm" || (vm.domain_type === "unspecified" && vm.HVM_boot_policy !== "");
}

function stateOf(powerState: VmRecord["power_state"]): VmState {
  switch (powerState) {
    case "Running":
      return "running";
    case "Paused":
      return "paused";
    case "Halted":
    case "Suspended":
      return "stopped";
    default:
      return "unknown";
  }
}

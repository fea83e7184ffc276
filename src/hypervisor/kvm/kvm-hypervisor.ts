import { type Mac, parseMac, parseUuid } from "../../addressing/index.js";
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from "../../backoff.js";
import { V6Error } from "../../errors.js";
import { createLogger, type Logger } from "../../log.js";
import type { Hypervisor, HypervisorEvent, HypervisorFacts, NicSpec, VmInfo, VmNic, VmSpec, VmState } from "../hypervisor.js";
import { type DomainType, domainXml, parseDomainNics, validateVmSpec } from "./domain-xml.js";
import { interfaceXml, interfaceXmlForDetach, type ParsedNic, validateNic } from "./interface-xml.js";
import { DeviceFlags, DomainState, type DomainSummary, LibvirtConnection, type NativeEvent } from "./libvirt.js";

export interface KvmHypervisorOptions {
  /** libvirt URI; default `qemu:///system`. */
  uri?: string;
  /** `kvm` (default) or `qemu` where hardware virtualisation is unusable (nested guests). */
  domainType?: DomainType;
  logger?: Logger;
  /** Reconnect backoff after libvirtd goes away (default 500 ms doubling to 15 s, jittered). */
  reconnectBackoff?: Partial<BackoffOptions>;
}

/** virDomainEventType values (libvirt-domain.h). */
const LifecycleEvent = { defined: 0, undefined: 1, started: 2, stopped: 5, crashed: 8 } as const;
/** VIR_DOMAIN_EVENT_STOPPED_CRASHED */
const STOPPED_CRASHED = 2;
const CLOSE_REASONS = ["I/O error", "end of file from libvirtd", "keepalive timeout", "closed by the client"];

function vmState(state: number): VmState {
  switch (state) {
    case DomainState.running:
    case DomainState.blocked:
    case DomainState.shutdown:
      return "running";
    case DomainState.paused:
    case DomainState.pmSuspended:
      return "paused";
    case DomainState.shutoff:
      return "stopped";
    case DomainState.crashed:
      return "crashed";
    default:
      return "unknown";
  }
}

function isActive(summary: DomainSummary): boolean {
  return summary.id >= 0;
}

function publicNic(nic: ParsedNic): VmNic {
  return { mac: nic.mac, device: nic.device, bridge: nic.bridge, model: nic.model };
}

/**
 * The KVM backend (design section 5) on our libvirt addon. Domains are addressed by UUID; the
 * agent names every tap itself; domain and interface XML go through the XML library only.
 * When libvirtd goes away the backend reports `connection-lost`, reconnects with backoff and
 * reports `connection-restored`; calls made meanwhile fail with `unavailable`.
 */
export class KvmHypervisor implements Hypervisor {
  readonly kind = "kvm" as const;
  private readonly uri: string;
  private readonly domainType: DomainType;
  private readonly log: Logger;
  private readonly backoff: BackoffOptions;
  private connection: LibvirtConnection | undefined;
  private wanted = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<(event: HypervisorEvent) => void>();
  /** Per domain, its NICs by device alias: a device-removed event names only the alias. */
  private readonly nicsByAlias = new Map<string, Map<string, ParsedNic>>();

  constructor(options: KvmHypervisorOptions = {}) {
    this.uri = options.uri ?? "qemu:///system";
    this.domainType = options.domainType ?? "kvm";
    this.log = (options.logger ?? createLogger()).child({ component: "hypervisor", backend: "kvm" });
    this.backoff = { ...DEFAULT_BACKOFF, maxMs: 15_000, ...options.reconnectBackoff };
  }

  async connect(): Promise<void> {
    this.wanted = true;
    if (this.connection !== undefined) return;
    try {
      await this.open();
    } catch (error) {
      if (error instanceof V6Error && error.code === "unavailable") {
        throw new V6Error("unavailable", `${error.message} (is libvirtd running?)`, { cause: error });
      }
      throw error;
    }
  }

  async close(): Promise<void> {
    this.wanted = false;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const connection = this.connection;
    this.connection = undefined;
    await connection?.close();
  }

  onEvent(listener: (event: HypervisorEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async facts(): Promise<HypervisorFacts> {
    const host = await this.live().host();
    return {
      kind: "kvm",
      hostname: host.hostname,
      hypervisorVersion: `${host.type} ${versionText(host.hypervisorVersion)}`,
      libraryVersion: `libvirt ${versionText(host.libraryVersion)}`,
    };
  }

  async listVms(): Promise<VmInfo[]> {
    const connection = this.live();
    const vms: VmInfo[] = [];
    for (const summary of await connection.listDomains()) {
      try {
        vms.push(await this.describe(connection, summary));
      } catch (error) {
        // Undefined between the listing and the XML read: it is simply no longer there.
        if (error instanceof V6Error && error.code === "not_found") continue;
        throw error;
      }
    }
    return vms;
  }

  async getVm(uuid: string): Promise<VmInfo> {
    const connection = this.live();
    return this.describe(connection, await this.lookup(connection, parseUuid(uuid)));
  }

  async deployVm(spec: VmSpec): Promise<VmInfo> {
    const valid = validateVmSpec(spec);
    const connection = this.live();
    const existing = await connection.lookupDomain(valid.uuid).catch((error: unknown) => {
      if (error instanceof V6Error && error.code === "not_found") return undefined;
      throw error;
    });
    if (existing !== undefined) {
      throw new V6Error("conflict", `a VM with UUID ${valid.uuid} already exists (${existing.name})`, { field: "uuid" });
    }
    await connection.defineDomain(domainXml(valid, this.domainType));
    try {
      await connection.createDomain(valid.uuid);
    } catch (error) {
      // No half-made VM: a definition that cannot start is removed again.
      await connection.undefineDomain(valid.uuid).catch((undefineError: unknown) => {
        this.log.error({ vm: valid.uuid, err: undefineError }, "undefining a VM that failed to start failed");
      });
      throw error;
    }
    this.log.info({ vm: valid.uuid, name: valid.name, nics: valid.nics.length }, "VM deployed");
    return this.getVm(valid.uuid);
  }

  async startVm(uuid: string): Promise<void> {
    const connection = this.live();
    const summary = await this.lookup(connection, parseUuid(uuid));
    if (isActive(summary)) return;
    await connection.createDomain(summary.uuid);
  }

  async stopVm(uuid: string, options: { force?: boolean; timeoutMs?: number } = {}): Promise<void> {
    const connection = this.live();
    const summary = await this.lookup(connection, parseUuid(uuid));
    if (!isActive(summary)) return;
    if (options.force) {
      await connection.destroyDomain(summary.uuid);
      return;
    }
    await connection.shutdownDomain(summary.uuid);
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    while (isActive(await connection.lookupDomain(summary.uuid))) {
      if (Date.now() > deadline) {
        throw new V6Error("timeout", `VM ${summary.uuid} did not shut down within ${options.timeoutMs ?? 60_000} ms; use force`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  async destroyVm(uuid: string): Promise<void> {
    const connection = this.live();
    const summary = await this.lookup(connection, parseUuid(uuid));
    if (isActive(summary)) await connection.destroyDomain(summary.uuid);
    await connection.undefineDomain(summary.uuid);
    this.nicsByAlias.delete(summary.uuid);
  }

  async attachNic(uuid: string, nic: NicSpec): Promise<VmNic> {
    const valid = validateNic(nic);
    const connection = this.live();
    const summary = await this.lookup(connection, parseUuid(uuid));
    const present = parseDomainNics(await connection.domainXml(summary.uuid), isActive(summary));
    if (present.some((existing) => existing.mac === valid.mac)) {
      throw new V6Error("conflict", `VM ${summary.uuid} already has a NIC with MAC ${valid.mac}`, { field: "mac" });
    }
    const flags = DeviceFlags.config | (isActive(summary) ? DeviceFlags.live : 0);
    await connection.attachDevice(summary.uuid, interfaceXml(valid), flags);
    const after = await this.describe(connection, await connection.lookupDomain(summary.uuid));
    const attached = after.nics.find((candidate) => candidate.mac === valid.mac);
    if (attached === undefined)
      throw new V6Error("hypervisor_failure", `libvirt accepted NIC ${valid.mac} but VM ${summary.uuid} does not show it`);
    return attached;
  }

  async detachNic(uuid: string, mac: Mac): Promise<void> {
    const validMac = parseMac(mac);
    const connection = this.live();
    const summary = await this.lookup(connection, parseUuid(uuid));
    const present = parseDomainNics(await connection.domainXml(summary.uuid), isActive(summary));
    const nic = present.find((existing) => existing.mac === validMac);
    if (nic === undefined) {
      throw new V6Error("not_found", `VM ${summary.uuid} has no NIC with MAC ${validMac}`, { field: "mac" });
    }
    if (nic.bridge === undefined) {
      throw new V6Error("conflict", `NIC ${validMac} of VM ${summary.uuid} is not on a bridge; the agent only detaches bridged NICs`, {
        field: "mac",
      });
    }
    const flags = DeviceFlags.config | (isActive(summary) ? DeviceFlags.live : 0);
    await connection.detachDevice(summary.uuid, interfaceXmlForDetach(validMac, nic.bridge), flags);
  }

  // ---------------------------------------------------------------------------------------------

  private live(): LibvirtConnection {
    if (this.connection === undefined) {
      throw new V6Error(
        "unavailable",
        `libvirt at ${this.uri} is not connected${this.wanted ? " (reconnecting)" : "; call connect() first"}`,
      );
    }
    return this.connection;
  }

  private async lookup(connection: LibvirtConnection, uuid: string): Promise<DomainSummary> {
    try {
      return await connection.lookupDomain(uuid);
    } catch (error) {
      if (error instanceof V6Error && error.code === "not_found") {
        throw new V6Error("not_found", `no VM with UUID ${uuid} on this host`, { field: "uuid", cause: error });
      }
      throw error;
    }
  }

  private async describe(connection: LibvirtConnection, summary: DomainSummary): Promise<VmInfo> {
    const active = isActive(summary);
    const nics = parseDomainNics(await connection.domainXml(summary.uuid), active);
    if (active) this.remember(summary.uuid, nics);
    return {
      uuid: summary.uuid,
      name: summary.name,
      state: vmState(summary.state),
      ...(active ? { domainId: summary.id } : {}),
      nics: nics.map(publicNic),
    };
  }

  private remember(uuid: string, nics: readonly ParsedNic[]): void {
    const byAlias = new Map<string, ParsedNic>();
    for (const nic of nics) if (nic.alias !== undefined) byAlias.set(nic.alias, nic);
    this.nicsByAlias.set(uuid, byAlias);
  }

  private async open(): Promise<void> {
    let connection: LibvirtConnection | undefined;
    // Events of a connection that is no longer ours (closed, replaced) are dropped.
    connection = await LibvirtConnection.open(this.uri, (event) => {
      if (connection !== undefined && connection === this.connection) this.onNative(connection, event);
    });
    if (!this.wanted) {
      await connection.close();
      return;
    }
    this.connection = connection;
    this.log.info({ uri: this.uri }, "libvirt connected");
  }

  private onNative(connection: LibvirtConnection, event: NativeEvent): void {
    switch (event.kind) {
      case "closed": {
        this.connection = undefined;
        const reason = CLOSE_REASONS[event.reason] ?? `reason ${event.reason}`;
        this.log.warn({ uri: this.uri, reason }, "libvirt connection lost");
        this.emit({ type: "connection-lost", reason });
        connection.close().catch(() => {});
        this.scheduleReconnect(0);
        return;
      }
      case "lifecycle": {
        const type =
          event.event === LifecycleEvent.started
            ? "vm-started"
            : event.event === LifecycleEvent.stopped
              ? event.detail === STOPPED_CRASHED
                ? "vm-crashed"
                : "vm-stopped"
              : event.event === LifecycleEvent.crashed
                ? "vm-crashed"
                : event.event === LifecycleEvent.defined
                  ? "vm-defined"
                  : event.event === LifecycleEvent.undefined
                    ? "vm-undefined"
                    : undefined;
        if (event.event === LifecycleEvent.stopped || event.event === LifecycleEvent.undefined) this.nicsByAlias.delete(event.uuid);
        if (type !== undefined) this.emit({ type, uuid: event.uuid });
        return;
      }
      case "device-added":
        this.deviceAdded(connection, event.uuid, event.alias).catch((error: unknown) => {
          this.log.warn({ vm: event.uuid, alias: event.alias, err: error }, "reading an added device failed");
        });
        return;
      case "device-removed": {
        const nic = this.nicsByAlias.get(event.uuid)?.get(event.alias);
        this.nicsByAlias.get(event.uuid)?.delete(event.alias);
        if (nic !== undefined) {
          this.emit({ type: "nic-removed", uuid: event.uuid, ...(nic.device ? { device: nic.device } : {}), mac: nic.mac });
        } else if (event.alias.startsWith("net")) {
          this.emit({ type: "nic-removed", uuid: event.uuid });
        }
        return;
      }
    }
  }

  private async deviceAdded(connection: LibvirtConnection, uuid: string, alias: string): Promise<void> {
    const nics = parseDomainNics(await connection.domainXml(uuid), true);
    this.remember(uuid, nics);
    const nic = nics.find((candidate) => candidate.alias === alias);
    if (nic === undefined) return; // a disk or another non-NIC device
    this.emit({ type: "nic-added", uuid, ...(nic.device ? { device: nic.device } : {}), mac: nic.mac });
  }

  private scheduleReconnect(attempt: number): void {
    if (!this.wanted || this.reconnectTimer !== undefined) return;
    this.reconnectTimer = setTimeout(
      () => {
        this.reconnectTimer = undefined;
        if (!this.wanted || this.connection !== undefined) return;
        this.open().then(
          () => {
            if (this.connection !== undefined) this.emit({ type: "connection-restored" });
          },
          (error: unknown) => {
            this.log.debug({ uri: this.uri, err: error }, "libvirt reconnect failed");
            this.scheduleReconnect(attempt + 1);
          },
        );
      },
      backoffDelay(attempt, this.backoff),
    );
    this.reconnectTimer.unref();
  }

  private emit(event: HypervisorEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.log.error({ err: error, event: event.type }, "hypervisor event listener threw");
      }
    }
  }
}

function versionText(version: number): string {
  return `${Math.floor(version / 1_000_000)}.${Math.floor(version / 1_000) % 1_000}.${version % 1_000}`;
}

import { type Ipv6Network, type Mac, parseAddressInNetwork, parseIpv4Address, type VlanId } from "../addressing/index.js";
import { V6Error } from "../errors.js";
import type { ApplyResult, Firewall } from "../firewall/model.js";
import type { Hypervisor, HypervisorEvent, VmInfo, VmSpec } from "../hypervisor/hypervisor.js";
import { tapNameForMac } from "../hypervisor/kvm/tap-name.js";
import type { Logger } from "../log.js";
import {
  type DesiredNetwork,
  type DesiredNic,
  type DesiredState,
  emptyDesiredState,
  findNetwork,
  findNic,
  type NetworkRouter,
  nicsOnNetwork,
  withNetwork,
  withNic,
  withoutNetwork,
  withoutNic,
} from "./desired-state.js";
import { failpoint } from "./failpoint.js";
import { KeyedLock } from "./keyed-lock.js";
import type { NetworkProvisioner, NetworkSpec } from "./network-provisioner.js";
import { guestPort, managedBridge, type ObservedPort, observedPorts, type PendingPort, planFirewall } from "./plan.js";
import { allVifReports, sameReport, type VifReport, vifReport, vmVifReports } from "./vif-report.js";

/** Persists the desired state (src/agent/state-store.ts in production). */
export interface DesiredStateStore {
  load(): Promise<DesiredState>;
  save(state: DesiredState): Promise<void>;
}

export interface EnsureNetworkInput {
  networkId: string;
  network: Ipv6Network;
  gateway?: string;
  vlan?: VlanId;
  mtu?: number;
  router?: NetworkRouter;
}

export interface NicInput {
  networkId: string;
  mac: Mac;
  model?: string;
  /** Unvalidated against the network yet: the agent checks them against the network's /64. */
  ipv6?: readonly string[];
  ipv4?: readonly string[];
}

export interface DeployVmInput {
  uuid: string;
  name: string;
  memoryMiB: number;
  vcpus: number;
  boot: VmSpec["boot"];
  nics: NicInput[];
}

export interface AgentDependencies {
  hypervisor: Hypervisor;
  firewall: Firewall;
  networks: NetworkProvisioner;
  store: DesiredStateStore;
  logger: Logger;
  /** Receives every VIF report the agent emits (the channel's `vif.report` in production). */
  report: (report: VifReport) => void;
}

export interface ReconcileSummary {
  firewall: ApplyResult;
  vms: number;
  protectedPorts: number;
  reports: VifReport[];
}

/**
 * The agent core: owns the desired state, converges the firewall to desired state and
 * hypervisor reality (at start, on every hypervisor event, on demand), and carries out the
 * management server's commands in the order the design requires — a port's rules are in place
 * before its NIC is attached, and reported after.
 */
export class Agent {
  private desired: DesiredState = emptyDesiredState();
  /** Ports seen on managed bridges, by VM. */
  private readonly observed = new Map<string, ObservedPort[]>();
  /** The same ports by MAC (a MAC seen on two VMs at once: the last one observed). */
  private readonly portsByMac = new Map<string, ObservedPort>();
  /** Ports being plugged or deployed: their rules exist before the hypervisor shows them. */
  private readonly pending = new Map<string, PendingPort>();
  private readonly lastReports = new Map<string, VifReport>();
  /** Last known state of every VM, for heartbeats (no hypervisor call per heartbeat). */
  private readonly vmStates = new Map<string, VmInfo["state"]>();
  private readonly vmLocks = new KeyedLock();
  private readonly log: Logger;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly deps: AgentDependencies) {
    this.log = deps.logger.child({ component: "agent" });
  }

  /** Loads the desired state, connects the hypervisor and converges before anything else. */
  async start(): Promise<ReconcileSummary> {
    this.desired = await this.deps.store.load();
    await this.deps.hypervisor.connect();
    this.unsubscribe = this.deps.hypervisor.onEvent((event) => this.onHypervisorEvent(event));
    return this.reconcile();
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.deps.hypervisor.close();
  }

  get state(): DesiredState {
    return this.desired;
  }

  /**
   * Full convergence: networks provisioned, firewall rebuilt from desired state plus every
   * running VM's NICs, reports for what changed. Used at start, after state.sync, after a
   * hypervisor reconnect and by the periodic safety net.
   */
  reconcile(): Promise<ReconcileSummary> {
    // Alone: a nic.plug finishing between listVms and the firewall apply would lose its chain.
    return this.vmLocks.runExclusive(() => this.reconcileAll());
  }

  private async reconcileAll(): Promise<ReconcileSummary> {
    for (const network of this.desired.networks) {
      await this.deps.networks.ensure(networkSpec(network));
    }
    const vms = await this.deps.hypervisor.listVms();
    this.vmStates.clear();
    for (const vm of vms) this.vmStates.set(vm.uuid, vm.state);
    this.observed.clear();
    this.portsByMac.clear();
    for (const port of observedPorts(this.desired, vms)) {
      const list = this.observed.get(port.vmUuid) ?? [];
      list.push(port);
      this.observed.set(port.vmUuid, list);
      this.portsByMac.set(port.mac, port);
    }
    const plan = planFirewall(this.desired, this.allObserved(), [...this.pending.values()], this.guestPortPatterns);
    const result = await this.deps.firewall.reconcile(plan);
    await this.prepare(this.allObserved().map((port) => port.device));
    const reports = this.emitChangedReports();
    this.log.info(
      { vms: vms.length, ports: plan.ports.length, changed: result.changed, added: result.addedPorts, removed: result.removedPorts },
      "host reconciled",
    );
    return { firewall: result, vms: vms.length, protectedPorts: plan.ports.length, reports };
  }

  /** VM and VIF states for agent.heartbeat, from what the agent already knows. */
  heartbeat(): { vms: { uuid: string; state: VmInfo["state"] }[]; vifs: { mac: string; device?: string; state: VifReport["state"] }[] } {
    return {
      vms: [...this.vmStates].map(([uuid, state]) => ({ uuid, state })),
      vifs: [...this.lastReports.values()].map((report) => ({ mac: report.mac, state: report.state, ...optional(report, "device") })),
    };
  }

  /** The full inventory, for agent.hello after every (re)connect. */
  inventory(): { networks: DesiredNetwork[]; vifs: VifReport[] } {
    return { networks: this.desired.networks, vifs: allVifReports(this.desired, this.allObserved()) };
  }

  async ensureNetwork(input: EnsureNetworkInput): Promise<{ networkId: string; bridge: string }> {
    const existing = findNetwork(this.desired, input.networkId);
    if (existing !== undefined && existing.network.cidr !== input.network.cidr && nicsOnNetwork(this.desired, input.networkId).length > 0) {
      throw new V6Error(
        "conflict",
        `network ${input.networkId} is ${existing.network.cidr} with NICs on it; it cannot become ${input.network.cidr}`,
        {
          field: "params.prefix",
        },
      );
    }
    const gateway = input.gateway === undefined ? undefined : parseAddressInNetwork(input.gateway, input.network, "params.gateway");
    const provisioned = await this.deps.networks.ensure(networkSpec(input));
    const network: DesiredNetwork = {
      networkId: input.networkId,
      network: input.network,
      bridge: provisioned.bridge,
      trustedPorts: provisioned.trustedPorts,
      ...(gateway === undefined ? {} : { gateway }),
      ...optional(input, "vlan"),
      ...optional(input, "mtu"),
      ...optional(input, "router"),
    };
    await this.deps.firewall.ensureBridge(managedBridge(network, this.guestPortPatterns));
    await this.commit(withNetwork(this.desired, network));
    this.log.info({ network: network.networkId, bridge: network.bridge, prefix: network.network.cidr }, "network ensured");
    return { networkId: network.networkId, bridge: network.bridge };
  }

  /** Returns false when there was no such network. */
  async removeNetwork(networkId: string): Promise<boolean> {
    const network = findNetwork(this.desired, networkId);
    if (network === undefined) return false;
    const nics = nicsOnNetwork(this.desired, networkId);
    const attached = this.allObserved().filter((port) => port.bridge === network.bridge);
    if (nics.length > 0 || attached.length > 0) {
      throw new V6Error(
        "conflict",
        `network ${networkId} still has ${nics.length + attached.length} guest NIC(s) (${[...nics.map((n) => n.mac), ...attached.map((p) => p.mac)].join(", ")}); unplug them first`,
        { field: "params.networkId" },
      );
    }
    await this.commit(withoutNetwork(this.desired, networkId));
    await this.deps.firewall.removeBridge(network.bridge);
    await this.deps.networks.remove({ ...networkSpec(network), bridge: network.bridge });
    this.log.info({ network: networkId, bridge: network.bridge }, "network removed");
    return true;
  }

  /** nic.plug: rules first, then attach, then report. */
  async plugNic(vmUuid: string, input: NicInput): Promise<VifReport> {
    const nic = this.desiredNic(input, "params");
    const network = findNetwork(this.desired, nic.networkId) as DesiredNetwork;
    const owner = findNic(this.desired, nic.mac);
    if (owner !== undefined && owner.vm.uuid !== vmUuid) {
      throw new V6Error("conflict", `MAC ${nic.mac} already belongs to VM ${owner.vm.uuid}`, { field: "params.mac" });
    }
    return this.vmLocks.run(vmUuid, async () => {
      const vm = await this.requireVm(vmUuid, "params.vmUuid");
      const previous = this.desired;
      await this.commit(withNic(this.desired, vmUuid, nic));
      const alreadyAttached = vm.nics.some((candidate) => candidate.mac === nic.mac);
      const device = this.deps.hypervisor.kind === "kvm" ? tapNameForMac(nic.mac) : undefined;
      try {
        if (device !== undefined) {
          const pendingPort: PendingPort = { vmUuid, mac: nic.mac, device, bridge: network.bridge };
          this.pending.set(device, pendingPort);
          await this.deps.firewall.upsertPort(guestPort(this.desired, pendingPort));
        }
        failpoint("nic.plug:after-rules");
        if (!alreadyAttached) {
          await this.deps.hypervisor.attachNic(vmUuid, {
            bridge: network.bridge,
            mac: nic.mac,
            ...optional(nic, "model"),
            ...(device === undefined ? {} : { device }),
          });
        }
        failpoint("nic.plug:after-attach");
      } catch (error) {
        await this.commit(previous);
        throw error;
      } finally {
        if (device !== undefined) this.pending.delete(device);
      }
      await this.reconcileVmLocked(vmUuid);
      const report = this.currentReport(vmUuid, nic.mac);
      failpoint("nic.plug:before-report");
      return report;
    });
  }

  async unplugNic(vmUuid: string, mac: Mac): Promise<VifReport> {
    return this.vmLocks.run(vmUuid, async () => {
      const vm = await this.requireVm(vmUuid, "params.vmUuid");
      const owner = findNic(this.desired, mac);
      if (owner !== undefined && owner.vm.uuid !== vmUuid) {
        throw new V6Error("conflict", `MAC ${mac} belongs to VM ${owner.vm.uuid}, not ${vmUuid}`, { field: "params.mac" });
      }
      const attached = vm.nics.find((candidate) => candidate.mac === mac);
      if (attached === undefined && owner === undefined) {
        throw new V6Error("not_found", `VM ${vmUuid} has no NIC with MAC ${mac}`, { field: "params.mac" });
      }
      if (attached !== undefined) await this.deps.hypervisor.detachNic(vmUuid, mac);
      await this.commit(withoutNic(this.desired, mac));
      await this.reconcileVmLocked(vmUuid);
      return vifReport({ vmUuid, mac, state: "unplugged", ...(owner === undefined ? {} : { networkId: owner.nic.networkId }) });
    });
  }

  /** vm.deploy (KVM): every NIC's rules exist under the tap name the agent chose before the VM starts. */
  async deployVm(input: DeployVmInput): Promise<{ uuid: string; vifs: VifReport[] }> {
    const nics = input.nics.map((nic, index) => this.desiredNic(nic, `params.nics[${index}]`));
    for (const [index, nic] of nics.entries()) {
      const owner = findNic(this.desired, nic.mac);
      if (owner !== undefined && owner.vm.uuid !== input.uuid) {
        throw new V6Error("conflict", `MAC ${nic.mac} already belongs to VM ${owner.vm.uuid}`, { field: `params.nics[${index}].mac` });
      }
    }
    return this.vmLocks.run(input.uuid, async () => {
      const previous = this.desired;
      let next = this.desired;
      for (const nic of nics) next = withNic(next, input.uuid, nic);
      await this.commit(next);
      const pendingPorts = nics.map((nic) => ({
        vmUuid: input.uuid,
        mac: nic.mac,
        device: tapNameForMac(nic.mac),
        bridge: (findNetwork(this.desired, nic.networkId) as DesiredNetwork).bridge,
      }));
      try {
        for (const port of pendingPorts) {
          this.pending.set(port.device, port);
          await this.deps.firewall.upsertPort(guestPort(this.desired, port));
        }
        await this.deps.hypervisor.deployVm({
          uuid: input.uuid,
          name: input.name,
          memoryMiB: input.memoryMiB,
          vcpus: input.vcpus,
          boot: input.boot,
          nics: nics.map((nic, index) => ({
            bridge: (pendingPorts[index] as PendingPort).bridge,
            mac: nic.mac,
            device: (pendingPorts[index] as PendingPort).device,
            ...optional(nic, "model"),
          })),
        });
      } catch (error) {
        await this.commit(previous);
        throw error;
      } finally {
        for (const port of pendingPorts) this.pending.delete(port.device);
      }
      await this.reconcileVmLocked(input.uuid);
      return { uuid: input.uuid, vifs: nics.map((nic) => this.currentReport(input.uuid, nic.mac)) };
    });
  }

  /** vm.stop: the VM's ports lose their rules once its taps are gone; its NICs stay wanted (detached). */
  async stopVm(uuid: string, force: boolean): Promise<{ uuid: string; state: VmInfo["state"] }> {
    return this.vmLocks.run(uuid, async () => {
      await this.requireVm(uuid, "params.uuid");
      await this.deps.hypervisor.stopVm(uuid, { force });
      await this.reconcileVmLocked(uuid);
      return { uuid, state: this.vmStates.get(uuid) ?? "unknown" };
    });
  }

  listVms(): Promise<VmInfo[]> {
    return this.deps.hypervisor.listVms();
  }

  /**
   * state.sync: the server's full desired state replaces ours. Networks are ensured, networks
   * no longer wanted and free of NICs are removed, NICs missing on existing VMs are attached
   * and NICs on managed bridges of listed VMs that the server no longer wants are detached.
   * VMs the server does not list are left alone (still protected and reported).
   */
  async syncState(networks: EnsureNetworkInput[], vms: { uuid: string; nics: NicInput[] }[]): Promise<ReconcileSummary> {
    for (const network of networks) await this.ensureNetwork(network);
    for (const [vmIndex, vm] of vms.entries()) {
      const wanted = vm.nics.map((nic, index) => this.desiredNic(nic, `params.vms[${vmIndex}].nics[${index}]`));
      let info: VmInfo | undefined;
      try {
        info = await this.deps.hypervisor.getVm(vm.uuid);
      } catch (error) {
        if (!(error instanceof V6Error && error.code === "not_found")) throw error;
      }
      const managed = new Set<string>(this.desired.networks.map((n) => n.bridge));
      if (info !== undefined) {
        for (const nic of info.nics) {
          if (nic.bridge !== undefined && managed.has(nic.bridge) && !wanted.some((w) => w.mac === nic.mac)) {
            await this.unplugNic(vm.uuid, nic.mac);
          }
        }
        for (const nic of wanted) await this.plugNic(vm.uuid, nic);
      } else {
        let next = this.desired;
        for (const nic of wanted) next = withNic(next, vm.uuid, nic);
        await this.commit(next);
      }
    }
    const listed = new Set(vms.map((vm) => vm.uuid));
    const keepIds = new Set(networks.map((n) => n.networkId));
    for (const vm of this.desired.vms) {
      if (!listed.has(vm.uuid)) {
        let next = this.desired;
        for (const nic of vm.nics) next = withoutNic(next, nic.mac);
        await this.commit(next);
      }
    }
    for (const network of this.desired.networks) {
      if (!keepIds.has(network.networkId) && nicsOnNetwork(this.desired, network.networkId).length === 0) {
        await this.removeNetwork(network.networkId).catch((error) =>
          this.log.warn({ err: error, network: network.networkId }, "network kept"),
        );
      }
    }
    return this.reconcile();
  }

  /** Applies a hypervisor event to the affected VM only; a reconnect triggers a full reconcile. */
  private onHypervisorEvent(event: HypervisorEvent): void {
    if (event.type === "connection-lost") {
      this.log.warn({ reason: event.reason }, "hypervisor connection lost");
      return;
    }
    const task =
      event.type === "connection-restored" ? this.reconcile() : this.vmLocks.run(event.uuid, () => this.reconcileVmLocked(event.uuid));
    task.catch((error: unknown) => this.log.error({ err: error, event }, "reconcile after hypervisor event failed"));
  }

  /** Converges the rules of one VM's ports to what the hypervisor shows now. Caller holds the VM's lock. */
  private async reconcileVmLocked(uuid: string): Promise<void> {
    let vm: VmInfo | undefined;
    try {
      vm = await this.deps.hypervisor.getVm(uuid);
    } catch (error) {
      if (!(error instanceof V6Error && error.code === "not_found")) throw error;
    }
    if (vm === undefined) this.vmStates.delete(uuid);
    else this.vmStates.set(uuid, vm.state);
    const before = this.observed.get(uuid) ?? [];
    const after = vm === undefined ? [] : observedPorts(this.desired, [vm]);
    const pendingOfVm = [...this.pending.values()].filter((port) => port.vmUuid === uuid);
    const wanted = planFirewall(this.desired, after, pendingOfVm, this.guestPortPatterns).ports;
    for (const port of wanted) await this.deps.firewall.upsertPort(port);
    const known = new Set(before.map((port) => port.device as string));
    await this.prepare(after.filter((port) => !known.has(port.device)).map((port) => port.device));
    const keep = new Set(wanted.map((port) => port.device as string));
    for (const port of before) {
      if (!keep.has(port.device) && !this.deviceOwnedElsewhere(port.device, uuid)) await this.deps.firewall.removePort(port.device);
    }
    for (const port of before) if (this.portsByMac.get(port.mac) === port) this.portsByMac.delete(port.mac);
    for (const port of after) this.portsByMac.set(port.mac, port);
    if (after.length === 0) this.observed.delete(uuid);
    else this.observed.set(uuid, after);
    this.emitChangedReports(uuid);
  }

  /** The VM, or `not_found` naming the command's own field. */
  private async requireVm(uuid: string, field: string): Promise<VmInfo> {
    try {
      return await this.deps.hypervisor.getVm(uuid);
    } catch (error) {
      if (error instanceof V6Error && error.code === "not_found") throw new V6Error("not_found", error.message, { field, cause: error });
      throw error;
    }
  }

  /** Host IPv6 off on guest ports; a port that vanished meanwhile is not an error. */
  private async prepare(devices: readonly string[]): Promise<void> {
    if (devices.length === 0) return;
    try {
      await this.deps.networks.preparePorts(devices);
    } catch (error) {
      // sysctl sets every key it can; one that vanished meanwhile makes it fail as a whole.
      this.log.warn({ ports: devices.length, err: error }, "could not disable host IPv6 on every guest port");
    }
  }

  private deviceOwnedElsewhere(device: string, uuid: string): boolean {
    for (const [owner, ports] of this.observed) {
      if (owner !== uuid && ports.some((port) => port.device === device)) return true;
    }
    return this.pending.has(device) && this.pending.get(device)?.vmUuid !== uuid;
  }

  private get guestPortPatterns(): readonly string[] {
    return this.deps.networks.guestPortPatterns ?? [];
  }

  private allObserved(): ObservedPort[] {
    return [...this.observed.values()].flat();
  }

  private currentReport(vmUuid: string, mac: Mac): VifReport {
    const report = this.vmReports(vmUuid).find((candidate) => candidate.mac === mac);
    return report ?? vifReport({ vmUuid, mac, state: "detached" });
  }

  private vmReports(vmUuid: string): VifReport[] {
    return vmVifReports(this.desired, vmUuid, this.portsByMac, this.observed.get(vmUuid) ?? []);
  }

  /**
   * Sends a report for every VIF whose report changed, and `unplugged` for VIFs that vanished:
   * of the whole host, or of one VM after a change that touched only it (a command or an event).
   */
  private emitChangedReports(vmUuid?: string): VifReport[] {
    const current = vmUuid === undefined ? allVifReports(this.desired, this.allObserved()) : this.vmReports(vmUuid);
    const sent: VifReport[] = [];
    const macs = new Set<string>();
    for (const report of current) {
      macs.add(report.mac);
      const last = this.lastReports.get(report.mac);
      if (last !== undefined && sameReport(last, report)) continue;
      this.lastReports.set(report.mac, report);
      sent.push(report);
    }
    for (const [mac, last] of this.lastReports) {
      if (macs.has(mac)) continue;
      if (vmUuid !== undefined) {
        // Another VM's VIF, or one that moved to another VM: that VM's report covers it.
        if (last.vmUuid !== vmUuid || this.portsByMac.has(mac) || findNic(this.desired, mac) !== undefined) continue;
      }
      this.lastReports.delete(mac);
      sent.push(vifReport({ vmUuid: last.vmUuid, mac: last.mac as Mac, state: "unplugged", ...optional(last, "networkId") }));
    }
    for (const report of sent) this.deps.report(report);
    return sent;
  }

  /** Validates a NIC against its network (which must exist on this host). */
  private desiredNic(input: NicInput, field: string): DesiredNic {
    const network = findNetwork(this.desired, input.networkId);
    if (network === undefined) {
      throw new V6Error("not_found", `network ${JSON.stringify(input.networkId)} is not set up on this host; send network.ensure first`, {
        field: `${field}.networkId`,
      });
    }
    return {
      networkId: input.networkId,
      mac: input.mac,
      ipv6: (input.ipv6 ?? []).map((address, index) => parseAddressInNetwork(address, network.network, `${field}.ipv6[${index}]`)),
      ipv4: (input.ipv4 ?? []).map((address, index) => parseIpv4Address(address, `${field}.ipv4[${index}]`)),
      ...optional(input, "model"),
    };
  }

  private async commit(next: DesiredState): Promise<void> {
    this.desired = next;
    await this.deps.store.save(next);
  }
}

function networkSpec(network: EnsureNetworkInput | DesiredNetwork): NetworkSpec {
  return { networkId: network.networkId, network: network.network, ...optional(network, "vlan"), ...optional(network, "mtu") };
}

/** `{ key: value }` when the value is defined, `{}` otherwise (exact optional properties). */
function optional<T extends object, K extends keyof T>(source: T, key: K): Pick<T, K> | Record<string, never> {
  return source[key] === undefined ? {} : ({ [key]: source[key] } as Pick<T, K>);
}

import { type Mac, parseAddressInNetwork } from "../addressing/index.js";
import { V6Error } from "../errors.js";
import type { ApplyResult, Firewall } from "../firewall/model.js";
import type { HypervisorBackend } from "../hypervisor/backend.js";
import { type Hypervisor, type HypervisorEvent, type VmInfo, vmIfExists } from "../hypervisor/hypervisor.js";
import type { NetworkProvisioner } from "../hypervisor/network-provisioner.js";
import { KeyedLock } from "../keyed-lock.js";
import type { Logger } from "../log.js";
import { deployVm } from "./deploy-vm.js";
import type { DesiredStateStore } from "./desired-record.js";
import { DesiredRecord } from "./desired-record.js";
import {
  type DesiredNetwork,
  type DesiredState,
  findNetwork,
  findNic,
  nicsOnNetwork,
  withNetwork,
  withNic,
  withoutNetwork,
  withoutNic,
} from "./desired-state.js";
import { GuestPorts } from "./guest-ports.js";
import { type DeployVmInput, type EnsureNetworkInput, type NicInput, networkSpec } from "./inputs.js";
import type { PendingPort } from "./plan.js";
import { observedRun, type ReconcileRun } from "./reconcile-run.js";
import { ReportTracker } from "./report-tracker.js";
import { syncState } from "./sync-state.js";
import { allVifReports, type IdentityLookup, isReported, type VifReport, vifReport, vmVifReports } from "./vif-report.js";

export type { DesiredStateStore };

export interface AgentDependencies {
  /** The hypervisor backend's bundle (`src/hypervisor/kvm/backend.ts`, `src/hypervisor/xenserver/backend.ts`). */
  backend: HypervisorBackend;
  firewall: Firewall;
  store: DesiredStateStore;
  logger: Logger;
  /** Receives every VIF report the agent emits (the channel's `vif.report` in production). */
  report: (report: VifReport) => void;
  /** Called at each named step of a command, so crash tests can kill the daemon there (`src/daemon/failpoint.ts`). */
  failpoint?: (name: string) => void;
  /** The DHCPv6 identity each port's guest sends (src/dhcp-observe), for the reports. */
  identity?: IdentityLookup;
  /** Told of every full reconcile, with its duration and outcome (the daemon's `v6agent status`). */
  reconciled?: (run: ReconcileRun) => void;
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
  private readonly record: DesiredRecord;
  private readonly ports: GuestPorts;
  private readonly reports = new ReportTracker();
  /** Last known state of every VM, for heartbeats (no hypervisor call per heartbeat). */
  private readonly vmStates = new Map<string, VmInfo["state"]>();
  private readonly vmLocks = new KeyedLock();
  private readonly log: Logger;
  private unsubscribe: (() => void) | undefined;

  private readonly hypervisor: Hypervisor;
  private readonly networks: NetworkProvisioner;
  private readonly failpoint: (name: string) => void;

  constructor(private readonly deps: AgentDependencies) {
    ({ hypervisor: this.hypervisor, networks: this.networks } = deps.backend);
    this.log = deps.logger.child({ component: "agent" });
    this.failpoint = deps.failpoint ?? (() => {});
    this.record = new DesiredRecord(deps.store);
    this.ports = new GuestPorts(deps.firewall, deps.backend.networks, deps.backend.guestPortPatterns, this.log);
  }

  /** Loads the desired state, connects the hypervisor and converges before anything else. */
  async start(): Promise<ReconcileSummary> {
    await this.record.load();
    await this.hypervisor.connect();
    this.unsubscribe = this.hypervisor.onEvent((event) => this.onHypervisorEvent(event));
    return this.reconcile();
  }

  /** Why the agent is leaving the live rules alone (its desired state is unreadable), if it is. */
  get stateProblem(): string | undefined {
    return this.record.problem;
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.hypervisor.close();
  }

  get state(): DesiredState {
    return this.record.state;
  }

  private get desired(): DesiredState {
    return this.record.state;
  }

  /**
   * Full convergence: networks provisioned, firewall rebuilt from desired state plus every
   * running VM's NICs, reports for what changed. Used at start, after state.sync, after a
   * hypervisor reconnect and by the periodic safety net.
   */
  reconcile(): Promise<ReconcileSummary> {
    if (this.record.problem !== undefined) {
      this.log.error({ problem: this.record.problem }, "desired state unreadable: live rules left as they are until state.sync");
      return Promise.resolve({ firewall: NOTHING_CHANGED, vms: 0, protectedPorts: 0, reports: [] });
    }
    // Alone: a nic.plug finishing between listVms and the firewall apply would lose its chain.
    return this.vmLocks.runExclusive(() => observedRun(() => this.reconcileAll(), this.deps.reconciled));
  }

  private async reconcileAll(): Promise<ReconcileSummary> {
    for (const network of this.desired.networks) {
      await this.networks.ensure(networkSpec(network));
    }
    const vms = await this.hypervisor.listVms();
    this.vmStates.clear();
    for (const vm of vms) this.vmStates.set(vm.uuid, vm.state);
    const { plan, result } = await this.ports.convergeAll(this.desired, vms);
    const reports = this.emitChangedReports();
    const { changed, addedPorts: added, removedPorts: removed } = result;
    this.log.info({ vms: vms.length, ports: plan.ports.length, changed, added, removed }, "host reconciled");
    return { firewall: result, vms: vms.length, protectedPorts: plan.ports.length, reports };
  }

  /** VM and VIF states for agent.heartbeat, from what the agent already knows. */
  heartbeat(): { vms: { uuid: string; state: VmInfo["state"] }[]; vifs: { mac: string; device?: string; state: VifReport["state"] }[] } {
    return {
      vms: [...this.vmStates].map(([uuid, state]) => ({ uuid, state })),
      vifs: this.reports.lastReports().map((report) => ({ mac: report.mac, state: report.state, device: report.device })),
    };
  }

  /** The full inventory, for agent.hello after every (re)connect. */
  inventory(): { networks: DesiredNetwork[]; vifs: VifReport[] } {
    return { networks: this.desired.networks, vifs: allVifReports(this.desired, this.ports.observed(), this.deps.identity) };
  }

  /** network.ensure, one at a time per network (and never during a full reconcile, which ensures them all). */
  async ensureNetwork(input: EnsureNetworkInput): Promise<{ networkId: string; bridge: string }> {
    this.record.requireTrusted();
    return this.vmLocks.run(`network:${input.networkId}`, () => this.ensureNetworkLocked(input));
  }

  private async ensureNetworkLocked(input: EnsureNetworkInput): Promise<{ networkId: string; bridge: string }> {
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
    const provisioned = await this.networks.ensure(networkSpec(input));
    const network: DesiredNetwork = {
      networkId: input.networkId,
      network: input.network,
      bridge: provisioned.bridge,
      trustedPorts: provisioned.trustedPorts,
      gateway,
      vlan: input.vlan,
      mtu: input.mtu,
      router: input.router,
    };
    await this.deps.firewall.ensureBridge(this.ports.managedBridge(network));
    await this.record.commit(withNetwork(this.desired, network));
    this.log.info({ network: network.networkId, bridge: network.bridge, prefix: network.network.cidr }, "network ensured");
    return { networkId: network.networkId, bridge: network.bridge };
  }

  /** Returns false when there was no such network. */
  async removeNetwork(networkId: string): Promise<boolean> {
    this.record.requireTrusted();
    const network = findNetwork(this.desired, networkId);
    if (network === undefined) return false;
    const nics = nicsOnNetwork(this.desired, networkId);
    const attached = this.ports.observed().filter((port) => port.bridge === network.bridge && isReported(port));
    if (nics.length > 0 || attached.length > 0) {
      throw new V6Error(
        "conflict",
        `network ${networkId} still has ${nics.length + attached.length} guest NIC(s) (${[...nics.map((n) => n.mac), ...attached.map((p) => p.mac)].join(", ")}); unplug them first`,
        { field: "params.networkId" },
      );
    }
    await this.record.commit(withoutNetwork(this.desired, networkId));
    await this.deps.firewall.removeBridge(network.bridge);
    await this.networks.remove({ ...networkSpec(network), bridge: network.bridge });
    this.log.info({ network: networkId, bridge: network.bridge }, "network removed");
    return true;
  }

  /** nic.plug: rules first, then attach, then report. */
  async plugNic(vmUuid: string, input: NicInput): Promise<VifReport> {
    this.record.requireTrusted();
    const nic = this.record.nic(input, "params");
    const network = findNetwork(this.desired, nic.networkId) as DesiredNetwork;
    const owner = findNic(this.desired, nic.mac);
    if (owner !== undefined && owner.vm.uuid !== vmUuid) {
      throw new V6Error("conflict", `MAC ${nic.mac} already belongs to VM ${owner.vm.uuid}`, { field: "params.mac" });
    }
    return this.vmLocks.run(vmUuid, async () => {
      const vm = await this.requireVm(vmUuid, "params.vmUuid");
      const previous = this.desired;
      await this.record.commit(withNic(this.desired, vmUuid, nic));
      const alreadyAttached = vm.nics.some((candidate) => candidate.mac === nic.mac);
      const device = this.deps.backend.deviceFor(nic.mac);
      try {
        if (device !== undefined) {
          const pendingPort: PendingPort = { vmUuid, mac: nic.mac, device, bridge: network.bridge };
          await this.ports.protectPending(this.desired, pendingPort);
        }
        this.failpoint("nic.plug:after-rules");
        if (!alreadyAttached) {
          await this.hypervisor.attachNic(vmUuid, {
            bridge: network.bridge,
            mac: nic.mac,
            model: nic.model,
            device,
          });
        }
        this.failpoint("nic.plug:after-attach");
      } catch (error) {
        await this.record.commit(previous);
        if (device !== undefined) await this.ports.abandonPending(device);
        throw error;
      } finally {
        if (device !== undefined) this.ports.removePending(device);
      }
      await this.reconcileVmLocked(vmUuid);
      const report = this.currentReport(vmUuid, nic.mac);
      this.failpoint("nic.plug:before-report");
      return report;
    });
  }

  async unplugNic(vmUuid: string, mac: Mac): Promise<VifReport> {
    this.record.requireTrusted();
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
      if (attached !== undefined) await this.hypervisor.detachNic(vmUuid, mac);
      await this.record.commit(withoutNic(this.desired, mac));
      await this.reconcileVmLocked(vmUuid);
      return vifReport({ vmUuid, mac, state: "unplugged", networkId: owner?.nic.networkId });
    });
  }

  /** vm.deploy (KVM): every NIC's rules exist under the tap name the agent chose before the VM starts (src/agent/deploy-vm.ts). */
  async deployVm(input: DeployVmInput): Promise<{ uuid: string; vifs: VifReport[] }> {
    this.record.requireTrusted();
    const nics = input.nics.map((nic, index) => this.record.nic(nic, `params.nics[${index}]`));
    return this.vmLocks.run(input.uuid, async () => {
      await deployVm(
        { record: this.record, ports: this.ports, hypervisor: this.hypervisor, deviceFor: this.deps.backend.deviceFor },
        input,
        nics,
      );
      await this.reconcileVmLocked(input.uuid);
      return { uuid: input.uuid, vifs: nics.map((nic) => this.currentReport(input.uuid, nic.mac)) };
    });
  }

  /** vm.stop: the VM's ports lose their rules once its taps are gone; its NICs stay wanted (detached). */
  async stopVm(uuid: string, force: boolean): Promise<{ uuid: string; state: VmInfo["state"] }> {
    this.record.requireTrusted();
    return this.vmLocks.run(uuid, async () => {
      await this.requireVm(uuid, "params.uuid");
      await this.hypervisor.stopVm(uuid, { force });
      await this.reconcileVmLocked(uuid);
      return { uuid, state: this.vmStates.get(uuid) ?? "unknown" };
    });
  }

  listVms(): Promise<VmInfo[]> {
    return this.hypervisor.listVms();
  }

  /** state.sync: the server's full desired state replaces ours, readable or not (src/agent/sync-state.ts). */
  syncState(networks: EnsureNetworkInput[], vms: { uuid: string; nics: NicInput[] }[]): Promise<ReconcileSummary> {
    this.record.replacing();
    return syncState(
      {
        record: this.record,
        vm: (uuid) => vmIfExists(this.hypervisor, uuid),
        ensureNetwork: (input) => this.ensureNetwork(input),
        removeNetwork: (networkId) => this.removeNetwork(networkId),
        plugNic: (vmUuid, input) => this.plugNic(vmUuid, input),
        unplugNic: (vmUuid, mac) => this.unplugNic(vmUuid, mac),
        reconcile: () => this.reconcile(),
        log: this.log,
      },
      networks,
      vms,
    );
  }

  /** Applies a hypervisor event to the affected VM only; a reconnect triggers a full reconcile. */
  private onHypervisorEvent(event: HypervisorEvent): void {
    if (this.record.problem !== undefined) return;
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
    const vm = await vmIfExists(this.hypervisor, uuid);
    if (vm === undefined) this.vmStates.delete(uuid);
    else this.vmStates.set(uuid, vm.state);
    await this.ports.convergeVm(this.desired, uuid, vm);
    this.emitChangedReports(uuid);
  }

  /** The VM, or `not_found` naming the command's own field. */
  private async requireVm(uuid: string, field: string): Promise<VmInfo> {
    try {
      return await this.hypervisor.getVm(uuid);
    } catch (error) {
      if (error instanceof V6Error && error.code === "not_found") throw new V6Error("not_found", error.message, { field, cause: error });
      throw error;
    }
  }

  /** The VM and MAC of the guest port on `device`, if it is one of the agent's. */
  portOf(device: string): { vmUuid: string; mac: Mac } | undefined {
    const port = this.ports.observed().find((candidate) => candidate.device === device && isReported(candidate));
    return port === undefined ? undefined : { vmUuid: port.vmUuid, mac: port.mac };
  }

  /** The DHCPv6 identity seen on these ports changed: their VMs' changed reports go out. */
  identityChanged(devices: readonly string[]): void {
    const vms = new Set(devices.flatMap((device) => this.portOf(device)?.vmUuid ?? []));
    for (const uuid of vms) {
      this.vmLocks
        .run(uuid, async () => void this.emitChangedReports(uuid))
        .catch((error: unknown) => this.log.error({ err: error }, "identity report failed"));
    }
  }

  private currentReport(vmUuid: string, mac: Mac): VifReport {
    const report = this.vmReports(vmUuid).find((candidate) => candidate.mac === mac);
    return report ?? vifReport({ vmUuid, mac, state: "detached" });
  }

  private vmReports(vmUuid: string): VifReport[] {
    return vmVifReports(this.desired, vmUuid, this.ports.byMac, this.ports.ofVm(vmUuid), this.deps.identity);
  }

  /**
   * Sends a report for every VIF whose report changed, and `unplugged` for VIFs that vanished:
   * of the whole host, or of one VM after a change that touched only it (a command or an event).
   */
  private emitChangedReports(vmUuid?: string): VifReport[] {
    const current = vmUuid === undefined ? allVifReports(this.desired, this.ports.observed(), this.deps.identity) : this.vmReports(vmUuid);
    const sent = this.reports.changes(current, { vmUuid, desired: this.desired, observedMacs: this.ports.byMac });
    for (const report of sent) this.deps.report(report);
    return sent;
  }
}

const NOTHING_CHANGED: ApplyResult = { changed: false, addedPorts: [], updatedPorts: [], removedPorts: [] };

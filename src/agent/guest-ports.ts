import type { InterfaceName } from "../addressing/index.js";
import type { ApplyResult, Firewall, FirewallState, ManagedBridge } from "../firewall/model.js";
import type { VmInfo } from "../hypervisor/hypervisor.js";
import type { NetworkProvisioner } from "../hypervisor/network-provisioner.js";
import type { Logger } from "../log.js";
import type { DesiredNetwork, DesiredState } from "./desired-state.js";
import { guestPort, managedBridge, type ObservedPort, observedPorts, type PendingPort, planFirewall } from "./plan.js";
import { isReported } from "./vif-report.js";

/**
 * The guest ports the agent knows of, and their rules: those the hypervisor shows on managed
 * bridges (by VM, and by MAC for reports), and those being plugged or deployed, whose rules
 * exist before the hypervisor shows them.
 */
export class GuestPorts {
  private readonly byVm = new Map<string, ObservedPort[]>();
  /** The reported port of each MAC (a MAC seen on two VMs at once: the last one observed). */
  readonly byMac = new Map<string, ObservedPort>();
  private readonly pendingByDevice = new Map<string, PendingPort>();

  constructor(
    private readonly firewall: Firewall,
    private readonly networks: NetworkProvisioner,
    /** The backend's guest-port patterns (fail closed on unknown ports matching them). */
    private readonly patterns: readonly string[],
    private readonly log: Logger,
  ) {}

  /** Every managed bridge and every port of every VM, converged in one firewall reconcile. */
  async convergeAll(desired: DesiredState, vms: readonly VmInfo[]): Promise<{ plan: FirewallState; result: ApplyResult }> {
    const observed = observedPorts(desired, vms);
    this.replaceAll(observed);
    const plan = planFirewall(desired, observed, this.pending(), this.patterns);
    const result = await this.firewall.reconcile(plan);
    await this.prepare(observed.map((port) => port.device));
    return { plan, result };
  }

  /** One VM's ports converged to what the hypervisor shows now (`vm` undefined: the VM is gone). */
  async convergeVm(desired: DesiredState, uuid: string, vm: VmInfo | undefined): Promise<void> {
    const before = this.ofVm(uuid);
    const after = vm === undefined ? [] : observedPorts(desired, [vm]);
    const wanted = planFirewall(desired, after, this.pending(uuid), this.patterns).ports;
    for (const port of wanted) await this.firewall.upsertPort(port);
    const known = new Set(before.map((port) => port.device as string));
    await this.prepare(after.filter((port) => !known.has(port.device)).map((port) => port.device));
    const keep = new Set(wanted.map((port) => port.device as string));
    for (const port of before) {
      if (!keep.has(port.device) && !this.ownedElsewhere(port.device, uuid)) await this.firewall.removePort(port.device);
    }
    this.replaceVm(uuid, after);
  }

  /** A port about to be created: its rules go in now, under the device name the agent chose. */
  async protectPending(desired: DesiredState, port: PendingPort): Promise<void> {
    this.pendingByDevice.set(port.device, port);
    await this.firewall.upsertPort(guestPort(desired, port));
  }

  /**
   * A pending port whose NIC or VM could not be created: its rules go again, unless the
   * hypervisor shows that device after all. Best effort: the original failure is what the caller
   * reports, and a device without rules is dropped by its bridge's guest-port pattern anyway.
   */
  async abandonPending(device: InterfaceName): Promise<void> {
    this.pendingByDevice.delete(device);
    if (this.observed().some((port) => port.device === device)) return;
    await this.firewall
      .removePort(device)
      .catch((error: unknown) => this.log.warn({ device, err: error }, "could not remove the rules of a port that was never made"));
  }

  managedBridge(network: DesiredNetwork): ManagedBridge {
    return managedBridge(network, this.patterns);
  }

  /** Host IPv6 off on guest ports; a port that vanished meanwhile is not an error. */
  private async prepare(devices: readonly string[]): Promise<void> {
    if (devices.length === 0) return;
    try {
      await this.networks.preparePorts(devices);
    } catch (error) {
      // sysctl sets every key it can; one that vanished meanwhile makes it fail as a whole.
      this.log.warn({ ports: devices.length, err: error }, "could not disable host IPv6 on every guest port");
    }
  }

  /** Replaces every observed port (a full reconcile). */
  private replaceAll(ports: readonly ObservedPort[]): void {
    this.byVm.clear();
    this.byMac.clear();
    for (const port of ports) {
      const list = this.byVm.get(port.vmUuid) ?? [];
      list.push(port);
      this.byVm.set(port.vmUuid, list);
      if (isReported(port)) this.byMac.set(port.mac, port);
    }
  }

  /** Replaces one VM's observed ports. */
  private replaceVm(vmUuid: string, ports: readonly ObservedPort[]): void {
    const before = this.byVm.get(vmUuid) ?? [];
    for (const port of before) if (this.byMac.get(port.mac) === port) this.byMac.delete(port.mac);
    for (const port of ports) if (isReported(port)) this.byMac.set(port.mac, port);
    if (ports.length === 0) this.byVm.delete(vmUuid);
    else this.byVm.set(vmUuid, [...ports]);
  }

  observed(): ObservedPort[] {
    return [...this.byVm.values()].flat();
  }

  ofVm(vmUuid: string): ObservedPort[] {
    return this.byVm.get(vmUuid) ?? [];
  }

  removePending(device: InterfaceName): void {
    this.pendingByDevice.delete(device);
  }

  pending(vmUuid?: string): PendingPort[] {
    const all = [...this.pendingByDevice.values()];
    return vmUuid === undefined ? all : all.filter((port) => port.vmUuid === vmUuid);
  }

  /** Another VM's observed or pending port uses this device (a tap name re-used after a move): its rules stay. */
  private ownedElsewhere(device: string, vmUuid: string): boolean {
    for (const [owner, ports] of this.byVm) {
      if (owner !== vmUuid && ports.some((port) => port.device === device)) return true;
    }
    const pending = this.pendingByDevice.get(device);
    return pending !== undefined && pending.vmUuid !== vmUuid;
  }
}

import { type InterfaceName, type Mac, parseInterfaceName } from "../../../src/addressing/index.js";
import { V6Error } from "../../../src/errors.js";
import type { HypervisorBackend } from "../../../src/hypervisor/backend.js";
import type { Hypervisor, HypervisorEvent, HypervisorFacts, NicSpec, VmInfo, VmNic, VmSpec } from "../../../src/hypervisor/hypervisor.js";
import type { NetworkProvisioner, NetworkSpec, ProvisionedNetwork } from "../../../src/hypervisor/network-provisioner.js";
import { Faults, Journal } from "./journal.js";

/**
 * An in-memory hypervisor with the interface's contract: `not_found` for unknown VMs, NICs get a
 * device when their VM runs (the name the caller chose, or `vif<domid>.<n>` as XenServer names
 * them), events only when a test emits them. Every call is journaled.
 */
export class FakeHypervisor implements Hypervisor {
  readonly kind = "kvm" as const;
  readonly vms = new Map<string, VmInfo>();
  readonly faults = new Faults();
  private readonly listeners = new Set<(event: HypervisorEvent) => void>();
  private nextDomid = 1;

  constructor(private readonly journal: Journal) {}

  async connect(): Promise<void> {
    this.journal.record("hypervisor.connect");
  }

  async close(): Promise<void> {}

  async facts(): Promise<HypervisorFacts> {
    return { kind: "kvm", hostname: "fake", hypervisorVersion: "0", libraryVersion: "0" };
  }

  async listVms(): Promise<VmInfo[]> {
    return [...this.vms.values()].map(copy);
  }

  async getVm(uuid: string): Promise<VmInfo> {
    return copy(this.vm(uuid));
  }

  async deployVm(spec: VmSpec): Promise<VmInfo> {
    this.faults.check("deployVm");
    this.journal.record(`hypervisor.deploy ${spec.uuid}`);
    const vm: VmInfo = { uuid: spec.uuid, name: spec.name, state: "running", domainId: this.nextDomid++, nics: [] };
    this.vms.set(spec.uuid, vm);
    for (const nic of spec.nics) vm.nics.push(this.nicOf(vm, nic));
    return copy(vm);
  }

  /** A VM made outside the agent (the cloud's own template), running or not. */
  addVm(uuid: string, options: { running?: boolean; nics?: { mac: Mac; bridge: string }[] } = {}): VmInfo {
    const running = options.running ?? true;
    const vm: VmInfo = {
      uuid,
      name: `vm-${uuid.slice(0, 8)}`,
      state: running ? "running" : "stopped",
      domainId: running ? this.nextDomid++ : -1,
      nics: [],
    };
    this.vms.set(uuid, vm);
    for (const nic of options.nics ?? []) vm.nics.push(this.nicOf(vm, { mac: nic.mac, bridge: nic.bridge }));
    return copy(vm);
  }

  async startVm(uuid: string): Promise<void> {
    const vm = this.vm(uuid);
    vm.state = "running";
    vm.domainId = this.nextDomid++;
    vm.nics = vm.nics.map((nic) => ({ ...nic, device: this.deviceName(vm, nic.index ?? 0, nic.device) }));
  }

  async stopVm(uuid: string): Promise<void> {
    this.journal.record(`hypervisor.stop ${uuid}`);
    const vm = this.vm(uuid);
    vm.state = "stopped";
    vm.domainId = -1;
    vm.nics = vm.nics.map((nic) => ({ ...nic, device: undefined }));
  }

  async destroyVm(uuid: string): Promise<void> {
    this.vms.delete(uuid);
  }

  async attachNic(uuid: string, nic: NicSpec): Promise<VmNic> {
    this.faults.check("attachNic");
    this.journal.record(`hypervisor.attach ${nic.mac}`);
    const vm = this.vm(uuid);
    if (vm.nics.some((candidate) => candidate.mac === nic.mac)) throw new V6Error("conflict", `VM ${uuid} already has ${nic.mac}`);
    const attached = this.nicOf(vm, nic);
    vm.nics.push(attached);
    return { ...attached };
  }

  async detachNic(uuid: string, mac: Mac): Promise<void> {
    this.faults.check("detachNic");
    this.journal.record(`hypervisor.detach ${mac}`);
    const vm = this.vm(uuid);
    if (!vm.nics.some((nic) => nic.mac === mac)) throw new V6Error("not_found", `VM ${uuid} has no NIC ${mac}`, { field: "mac" });
    vm.nics = vm.nics.filter((nic) => nic.mac !== mac);
  }

  onEvent(listener: (event: HypervisorEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: HypervisorEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  private vm(uuid: string): VmInfo {
    const vm = this.vms.get(uuid);
    if (vm === undefined) throw new V6Error("not_found", `no VM with UUID ${uuid}`, { field: "uuid" });
    return vm;
  }

  private nicOf(vm: VmInfo, nic: Pick<NicSpec, "mac" | "bridge" | "device">): VmNic {
    const index = vm.nics.length;
    return { mac: nic.mac, bridge: nic.bridge, model: "virtio", index, device: this.deviceName(vm, index, nic.device) };
  }

  private deviceName(vm: VmInfo, index: number, chosen: InterfaceName | undefined): InterfaceName | undefined {
    if (vm.state !== "running") return undefined;
    return chosen ?? parseInterfaceName(`vif${vm.domainId}.${index}`);
  }
}

/** Bridges as names only: `v6br-<networkId>` with the uplink `up0` trusted. */
export class FakeNetworks implements NetworkProvisioner {
  readonly prepared: string[] = [];
  readonly faults = new Faults();

  constructor(private readonly journal: Journal) {}

  async ensure(spec: NetworkSpec): Promise<ProvisionedNetwork> {
    this.faults.check("ensure");
    this.journal.record(`networks.ensure ${spec.networkId}`);
    return { bridge: parseInterfaceName(`br-${spec.networkId}`.slice(0, 15)), trustedPorts: [parseInterfaceName("up0")] };
  }

  async remove(spec: NetworkSpec & { bridge: InterfaceName }): Promise<void> {
    this.journal.record(`networks.remove ${spec.networkId}`);
  }

  async preparePorts(devices: readonly string[]): Promise<void> {
    this.prepared.push(...devices);
  }
}

/**
 * A backend bundle of fakes. `names: "agent"` plays KVM (the agent names taps `t<mac>` before
 * they exist); `names: "hypervisor"` plays XenServer (devices known only once plugged).
 */
export function fakeBackend(
  names: "agent" | "hypervisor",
  journal = new Journal(),
): {
  backend: HypervisorBackend;
  hypervisor: FakeHypervisor;
  networks: FakeNetworks;
  journal: Journal;
} {
  const hypervisor = new FakeHypervisor(journal);
  const networks = new FakeNetworks(journal);
  return {
    hypervisor,
    networks,
    journal,
    backend: {
      hypervisor,
      networks,
      guestPortPatterns: names === "agent" ? ["t*"] : ["vif*"],
      deviceFor: (mac) => (names === "agent" ? parseInterfaceName(`t${mac.replaceAll(":", "")}`) : undefined),
      capabilities: names === "agent" ? ["network.ensure", "nic.plug", "vm.deploy"] : ["network.ensure", "nic.plug"],
    },
  };
}

function copy(vm: VmInfo): VmInfo {
  return { ...vm, nics: vm.nics.map((nic) => ({ ...nic })) };
}

import type { XapiObject } from "xen-api";
import type { HypervisorEvent } from "../hypervisor.js";
import { vifDeviceName } from "./device-name.js";
import type { VifRecord, VmRecord } from "./records.js";

interface VmState {
  uuid: string;
  powerState: string;
  domid: number;
  /** The domid of the VM's last running domain: a different one means new dom0 device names. */
  lastRunningDomid: number | undefined;
}

interface VifState {
  vmRef: string;
  mac: string;
  /** `VIF.device`, the guest's NIC index. */
  index: string;
  attached: boolean;
  /** The dom0 device name while attached (kept so the removal can name the old device). */
  device: string | undefined;
}

/**
 * Turns the xen-api object cache's add/update/remove batches (fed by `event.from`) into the
 * hypervisor events of the agent core: VM started/stopped, NIC added/removed (with the dom0
 * device name), and `domid-changed` whenever a running VM's domain was replaced (reboot,
 * migration), which renames every one of its `vif<domid>.<n>` devices.
 */
export class VmEventTracker {
  private readonly vms = new Map<string, VmState>();
  private readonly vifs = new Map<string, VifState>();
  /** The cache keys objects by `$id` (the UUID) and reports removals by it alone. */
  private readonly refById = new Map<string, string>();

  constructor(private readonly emit: (event: HypervisorEvent) => void) {}

  /** Records the current state without emitting (the initial fetch). */
  prime(objects: Iterable<XapiObject>): void {
    const sorted = [...objects];
    for (const object of sorted) this.refById.set(object.$id, object.$ref);
    for (const object of sorted)
      if (object.$type === "VM") this.vms.set(object.$ref, this.vmState(object as unknown as VmRecord & XapiObject));
    for (const object of sorted)
      if (object.$type === "VIF") this.vifs.set(object.$ref, this.vifState(object as unknown as VifRecord & XapiObject));
  }

  /** One cache batch: VMs before VIFs so a VIF's device name uses its VM's new domid. */
  update(objects: Iterable<XapiObject>): void {
    const all = [...objects];
    for (const object of all) this.refById.set(object.$id, object.$ref);
    for (const object of all) if (object.$type === "VM") this.updateVm(object as unknown as VmRecord & XapiObject);
    for (const object of all) if (object.$type === "VIF") this.updateVif(object as unknown as VifRecord & XapiObject);
  }

  /** Objects gone from the cache, by `$id` (the cache no longer has their records). */
  remove(ids: Iterable<string>): void {
    for (const id of ids) {
      const ref = this.refById.get(id) ?? id;
      this.refById.delete(id);
      const vif = this.vifs.get(ref);
      if (vif !== undefined) {
        this.vifs.delete(ref);
        const vm = this.vms.get(vif.vmRef);
        if (vm !== undefined)
          this.emit({ type: "nic-removed", uuid: vm.uuid, mac: vif.mac, ...(vif.device ? { device: vif.device } : {}) });
      }
      const vm = this.vms.get(ref);
      if (vm !== undefined) {
        this.vms.delete(ref);
        this.emit({ type: "vm-undefined", uuid: vm.uuid });
      }
    }
  }

  private updateVm(record: VmRecord & XapiObject): void {
    if (record.is_control_domain || record.is_a_template || record.is_a_snapshot) return;
    const previous = this.vms.get(record.$ref);
    const next = this.vmState(record, previous);
    this.vms.set(record.$ref, next);
    if (previous === undefined) {
      this.emit({ type: "vm-defined", uuid: next.uuid });
      if (next.powerState === "Running") this.emit({ type: "vm-started", uuid: next.uuid });
      return;
    }
    if (previous.powerState !== "Running" && next.powerState === "Running") this.emit({ type: "vm-started", uuid: next.uuid });
    if (previous.powerState === "Running" && next.powerState === "Halted") this.emit({ type: "vm-stopped", uuid: next.uuid });
    if (next.powerState === "Running" && previous.lastRunningDomid !== undefined && next.domid !== previous.lastRunningDomid) {
      this.emit({ type: "domid-changed", uuid: next.uuid, domainId: next.domid });
      // The devices of attached VIFs were renamed with the domain.
      for (const vif of this.vifs.values())
        if (vif.vmRef === record.$ref && vif.attached) vif.device = vifDeviceName(next.domid, vif.index);
    }
  }

  private updateVif(record: VifRecord & XapiObject): void {
    const previous = this.vifs.get(record.$ref);
    const next = this.vifState(record);
    this.vifs.set(record.$ref, next);
    const vm = this.vms.get(record.VM);
    if (vm === undefined) return;
    if (previous === undefined || (!previous.attached && next.attached)) {
      this.emit({ type: "nic-added", uuid: vm.uuid, mac: next.mac, ...(next.device ? { device: next.device } : {}) });
    } else if (previous.attached && !next.attached) {
      this.emit({ type: "nic-removed", uuid: vm.uuid, mac: next.mac, ...(previous.device ? { device: previous.device } : {}) });
    }
  }

  private vmState(record: VmRecord, previous?: VmState): VmState {
    const running = record.power_state === "Running" && record.domid >= 0;
    return {
      uuid: record.uuid,
      powerState: record.power_state,
      domid: record.domid,
      lastRunningDomid: running ? record.domid : previous?.lastRunningDomid,
    };
  }

  private vifState(record: VifRecord): VifState {
    const vm = this.vms.get(record.VM);
    const attached = record.currently_attached;
    const device =
      attached && vm !== undefined && vm.powerState === "Running" && vm.domid >= 0 ? vifDeviceName(vm.domid, record.device) : undefined;
    return { vmRef: record.VM, mac: record.MAC, index: record.device, attached, device };
  }
}

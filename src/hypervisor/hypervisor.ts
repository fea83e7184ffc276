import type { InterfaceName, Mac } from "../addressing/index.js";

/**
 * The one interface both hypervisor backends implement (design sections 2 and 5): `kvm/` on our
 * libvirt addon, `xenserver/` on XAPI. The agent core only ever sees these types.
 */
export type HypervisorKind = "kvm" | "xenserver";

export type VmState = "running" | "paused" | "stopped" | "crashed" | "unknown";

/** A guest NIC as the hypervisor sees it. */
export interface VmNic {
  mac: Mac;
  /** Host-side device (tap/vnet on KVM, `vif<domid>.<n>`/`tap<domid>.<n>` on XenServer); absent while the VM is not running. */
  device: InterfaceName | undefined;
  /** The Linux bridge the NIC is on (XenServer: the XAPI network's `bridge`). */
  bridge: string | undefined;
  /** NIC model: `virtio`, `e1000`, ... (XenServer: `netfront`, or `emulated` for tap devices). */
  model: string;
  /** XenServer only: the VIF's device number (`VIF.device`). */
  index?: number;
  /**
   * XenServer HVM guests only: QEMU's emulated twin of `device` (`tap<domid>.<n>`), which carries
   * the guest's traffic until its PV drivers load. Both ports need the same rules.
   */
  emulatedDevice?: InterfaceName;
}

export interface VmInfo {
  uuid: string;
  name: string;
  state: VmState;
  /** XenServer's domid (-1 when halted); KVM's domain id when running. */
  domainId?: number;
  nics: VmNic[];
}

/** What the agent asks for when it plugs a NIC. */
export interface NicSpec {
  /** The bridge (KVM) or the bridge of the XAPI network (XenServer) to attach to. */
  bridge: string;
  mac: Mac;
  /** Default `virtio` on KVM; ignored on XenServer. */
  model?: string;
  /**
   * KVM: the tap name the agent chose (`<target dev=.../>`, ≤ 15 bytes) so the port's firewall
   * rules exist before the tap does. XenServer names devices itself.
   */
  device?: InterfaceName;
  /** XenServer: the VIF device number to use (`VIF.device`); default the lowest allowed one. */
  index?: number;
}

export type BootSpec = { kind: "kernel"; kernel: string; initrd?: string; cmdline?: string } | { kind: "disk"; path: string };

export interface VmSpec {
  name: string;
  uuid: string;
  memoryMiB: number;
  vcpus: number;
  boot: BootSpec;
  nics: NicSpec[];
  /** Extra backend-specific needs, e.g. a serial console log file for tests. */
  consoleLog?: string;
}

export type HypervisorEvent =
  | { type: "vm-started"; uuid: string }
  | { type: "vm-stopped"; uuid: string }
  | { type: "vm-crashed"; uuid: string }
  | { type: "vm-defined"; uuid: string }
  | { type: "vm-undefined"; uuid: string }
  | { type: "nic-added"; uuid: string; device?: string; mac?: string }
  | { type: "nic-removed"; uuid: string; device?: string; mac?: string }
  /** XenServer: a VM's domid changed (reboot, migration), so its device names changed. */
  | { type: "domid-changed"; uuid: string; domainId: number }
  | { type: "connection-lost"; reason: string }
  | { type: "connection-restored" };

export interface HypervisorFacts {
  kind: HypervisorKind;
  hostname: string;
  /** e.g. libvirt's hypervisor version or XenServer's product version. */
  hypervisorVersion: string;
  /** e.g. libvirt library version or XAPI API version. */
  libraryVersion: string;
}

export interface Hypervisor {
  readonly kind: HypervisorKind;
  /** Opens the connection; later disconnects are retried by the backend and reported as events. */
  connect(): Promise<void>;
  close(): Promise<void>;
  facts(): Promise<HypervisorFacts>;
  listVms(): Promise<VmInfo[]>;
  /** Throws V6Error `not_found` naming the UUID when there is no such VM. */
  getVm(uuid: string): Promise<VmInfo>;
  /** Defines and starts a VM (KVM). XenServer: not offered (VMs come from templates); throws `not_implemented`. */
  deployVm(spec: VmSpec): Promise<VmInfo>;
  startVm(uuid: string): Promise<void>;
  /**
   * Graceful shutdown, or hard power-off with `force`. A graceful stop waits until the VM is off,
   * at most `timeoutMs` (default 60 s), then fails with `timeout`. Stopping a stopped VM is a no-op.
   */
  stopVm(uuid: string, options?: { force?: boolean; timeoutMs?: number }): Promise<void>;
  /** Stops if running and removes the VM's definition. */
  destroyVm(uuid: string): Promise<void>;
  attachNic(uuid: string, nic: NicSpec): Promise<VmNic>;
  detachNic(uuid: string, mac: Mac): Promise<void>;
  /** Subscribes to events; returns the unsubscribe function. */
  onEvent(listener: (event: HypervisorEvent) => void): () => void;
}

/** The VM, or undefined when the hypervisor has no such VM (any other failure is thrown). */
export async function vmIfExists(hypervisor: Hypervisor, uuid: string): Promise<VmInfo | undefined> {
  try {
    return await hypervisor.getVm(uuid);
  } catch (error) {
    if ((error as { code?: unknown }).code === "not_found") return undefined;
    throw error;
  }
}

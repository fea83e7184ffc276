export type {
  BootSpec,
  Hypervisor,
  HypervisorEvent,
  HypervisorFacts,
  HypervisorKind,
  NicSpec,
  VmInfo,
  VmNic,
  VmSpec,
  VmState,
} from "./hypervisor.js";
export type { DomainType } from "./kvm/domain-xml.js";
export { KvmHypervisor, type KvmHypervisorOptions } from "./kvm/kvm-hypervisor.js";
export { LibvirtConnection, LibvirtError, libvirtLibraryVersion } from "./kvm/libvirt.js";
export { tapNameForMac } from "./kvm/tap-name.js";

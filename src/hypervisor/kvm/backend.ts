import type { InterfaceName } from "../../addressing/index.js";
import type { Logger } from "../../log.js";
import type { HypervisorBackend } from "../backend.js";
import type { DomainType } from "./domain-xml.js";
import { HostBridgeProvisioner } from "./host-bridges.js";
import { KvmHypervisor } from "./kvm-hypervisor.js";
import { TAP_NAME_PATTERN, tapNameForMac } from "./tap-name.js";

export interface KvmBackendOptions {
  uri: string;
  domainType: DomainType;
  uplink?: InterfaceName | undefined;
  mtu?: number | undefined;
  /** The namespace holding the host side (tests and the lab). */
  netns?: string | undefined;
  logger: Logger;
}

/** KVM through our libvirt addon: Linux bridges on the host, tap names the agent chooses. */
export function kvmBackend(options: KvmBackendOptions): HypervisorBackend {
  return {
    hypervisor: new KvmHypervisor({ uri: options.uri, domainType: options.domainType, logger: options.logger }),
    networks: new HostBridgeProvisioner({ uplink: options.uplink, mtu: options.mtu, netns: options.netns }),
    // Only the agent's own tap names: a libvirt `vnet*` pattern would also catch guests on bridges we do not manage.
    guestPortPatterns: [TAP_NAME_PATTERN],
    deviceFor: tapNameForMac,
    capabilities: ["network.ensure", "nic.plug", "vm.deploy", "state.sync", "host.diagnose"],
  };
}

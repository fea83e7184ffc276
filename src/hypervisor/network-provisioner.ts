import type { InterfaceName, Ipv6Network, VlanId } from "../addressing/index.js";

/** A shared network as the host must carry it. */
export interface NetworkSpec {
  networkId: string;
  network: Ipv6Network;
  vlan?: VlanId;
  mtu?: number;
}

/** Where a network landed on this host. */
export interface ProvisionedNetwork {
  bridge: InterfaceName;
  /** Bridge ports where router traffic enters (the uplink or its VLAN sub-interface). */
  trustedPorts: InterfaceName[];
}

/**
 * Makes a shared network's bridge exist on this host: Linux bridges and VLAN sub-interfaces on
 * KVM (`src/hostnet/`), XAPI networks and VLANs on XenServer. Idempotent.
 */
export interface NetworkProvisioner {
  ensure(spec: NetworkSpec): Promise<ProvisionedNetwork>;
  /** Removes the network's bridge; called only when no desired NIC remains on it. */
  remove(spec: NetworkSpec & { bridge: InterfaceName }): Promise<void>;
  /** Readies guest ports the moment they are seen: the host itself takes no IPv6 part on it. */
  preparePorts(devices: readonly string[]): Promise<void>;
}

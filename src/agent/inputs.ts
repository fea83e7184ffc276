import { type Ipv6Network, type Mac, parseAddressInNetwork, parseIpv4Address, type VlanId } from "../addressing/index.js";
import { V6Error } from "../errors.js";
import type { VmSpec } from "../hypervisor/hypervisor.js";
import type { NetworkSpec } from "../hypervisor/network-provisioner.js";
import { type DesiredNetwork, type DesiredNic, type DesiredState, findNetwork, type NetworkRouter } from "./desired-state.js";

/** What the agent core's commands take, once the protocol's params are typed (src/agent/dispatch.ts). */
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

/** Validates a NIC against its network, which must exist on this host; errors name `field`. */
export function desiredNic(desired: DesiredState, input: NicInput, field: string): DesiredNic {
  const network = findNetwork(desired, input.networkId);
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
    model: input.model,
  };
}

export function networkSpec(network: EnsureNetworkInput | DesiredNetwork): NetworkSpec {
  return { networkId: network.networkId, network: network.network, vlan: network.vlan, mtu: network.mtu };
}

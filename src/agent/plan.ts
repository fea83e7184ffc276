import { eui64LinkLocal, type InterfaceName, type Mac } from "../addressing/index.js";
import { byDevice, type FirewallState, type GuestPort, type ManagedBridge } from "../firewall/model.js";
import type { VmInfo } from "../hypervisor/hypervisor.js";
import { type DesiredNetwork, type DesiredState, findNetwork, findNic } from "./desired-state.js";

/**
 * A port whose rules must exist although the hypervisor does not show it yet: a NIC being
 * plugged or a VM being deployed (rules go in before the tap carries its first frame).
 */
export interface PendingPort {
  vmUuid: string;
  mac: Mac;
  device: InterfaceName;
  bridge: string;
}

/** A guest NIC the hypervisor shows on a bridge this agent manages, with its owner. */
export interface ObservedPort {
  vmUuid: string;
  mac: Mac;
  device: InterfaceName;
  bridge: string;
  /**
   * The NIC's emulated twin (XenServer HVM: `tap<domid>.<n>` next to `vif<domid>.<n>` until the
   * guest's PV drivers load): the same rules, but the NIC is reported under its primary device.
   */
  emulated?: true;
}

const RUNNING_STATES = new Set(["running", "paused"]);

/** Every NIC of a running VM that sits on a managed bridge and has a host device (and its emulated twin). */
export function observedPorts(desired: DesiredState, vms: readonly VmInfo[]): ObservedPort[] {
  const managed = new Set<string>(desired.networks.map((network) => network.bridge));
  const ports: ObservedPort[] = [];
  for (const vm of vms) {
    if (!RUNNING_STATES.has(vm.state)) continue;
    for (const nic of vm.nics) {
      if (nic.device === undefined || nic.bridge === undefined || !managed.has(nic.bridge)) continue;
      ports.push({ vmUuid: vm.uuid, mac: nic.mac, device: nic.device, bridge: nic.bridge });
      if (nic.emulatedDevice !== undefined) {
        ports.push({ vmUuid: vm.uuid, mac: nic.mac, device: nic.emulatedDevice, bridge: nic.bridge, emulated: true });
      }
    }
  }
  return ports;
}

/**
 * The firewall state the host must have: every managed bridge (fail closed, trusted uplink
 * ports), and a guest port for every observed or pending NIC on one. A port's allowed
 * addresses come from the desired NIC with the same MAC on the same network; a NIC the server
 * never told us about (a VM started outside the agent) is still pinned to its MAC and
 * link-local, so it is protected from its first frame and can ask DHCPv6 for an address.
 */
export function planFirewall(
  desired: DesiredState,
  observed: readonly ObservedPort[],
  pending: readonly PendingPort[],
  guestPortPatterns: readonly string[] = [],
): FirewallState {
  const bridges: ManagedBridge[] = desired.networks.map((network) => managedBridge(network, guestPortPatterns));
  const ports = new Map<string, GuestPort>();
  for (const port of [...observed, ...pending]) {
    if (ports.has(port.device)) continue;
    ports.set(port.device, guestPort(desired, port));
  }
  return { bridges, ports: [...ports.values()].sort(byDevice) };
}

/**
 * A managed bridge as the firewall sees it. `guestPortPatterns` name the devices that can only
 * be guest ports (the agent's own tap names on KVM): on kernels whose nftables cannot tell which
 * bridge a frame entered, such a device without rules is dropped by name (fail closed).
 */
export function managedBridge(network: DesiredNetwork, guestPortPatterns: readonly string[]): ManagedBridge {
  const bridge: ManagedBridge = {
    name: network.bridge,
    trustedPorts: network.trustedPorts,
    ...(guestPortPatterns.length === 0 ? {} : { guestPortPatterns: [...guestPortPatterns] }),
  };
  // A named router makes the firewall guard the uplink (docs/security.md, "Router-side guard").
  const router = network.router;
  if (router !== undefined) {
    bridge.router = { mac: router.mac, linkLocal: router.linkLocal, requireManagedFlag: router.requireManagedFlag };
    if (router.onlyNetworkPrefix) bridge.router.prefix = network.network.cidr;
  }
  return bridge;
}

export function guestPort(desired: DesiredState, port: ObservedPort | PendingPort): GuestPort {
  const known = findNic(desired, port.mac);
  const network = known === undefined ? undefined : findNetwork(desired, known.nic.networkId);
  const addressesApply = known !== undefined && network !== undefined && network.bridge === port.bridge;
  return {
    device: port.device,
    bridge: port.bridge as InterfaceName,
    mac: port.mac,
    linkLocals: [eui64LinkLocal(port.mac)],
    ipv6: addressesApply ? [...known.nic.ipv6] : [],
    ipv4: addressesApply ? [...known.nic.ipv4] : [],
  };
}

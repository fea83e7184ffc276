import {
  type InterfaceName,
  type Ipv6Network,
  type Mac,
  parseAddressInNetwork,
  parseInterfaceName,
  parseIpv4Address,
  parseIpv6Address,
  parseIpv6Network,
  parseMac,
  parseMtu,
  parseNicModel,
  parseUuid,
  parseVlanId,
  type VlanId,
} from "../addressing/index.js";
import { InvalidArgumentError } from "../errors.js";

/**
 * What the management server wants on this host, as the agent keeps it (persisted under the
 * state dir). Hypervisor reality and the live firewall are converged towards it.
 */
export interface DesiredNetwork {
  networkId: string;
  network: Ipv6Network;
  gateway?: string;
  vlan?: VlanId;
  mtu?: number;
  /** The Linux bridge carrying this network on this host. */
  bridge: InterfaceName;
  /** Ports of that bridge where router traffic legitimately enters (uplink or VLAN interface). */
  trustedPorts: InterfaceName[];
  /** The network's router, when the management server names it (`network.ensure` `router`). */
  router?: NetworkRouter;
}

/**
 * A named router: RAs and DHCPv6 server messages from the uplink are then accepted only from
 * this MAC and link-local, with the M flag and only the network's /64 unless told otherwise.
 */
export interface NetworkRouter {
  mac: Mac;
  linkLocal: string;
  requireManagedFlag: boolean;
  onlyNetworkPrefix: boolean;
}

/** A router as `network.ensure` or the state file gives it, checked; the flags default to true. */
export function parseNetworkRouter(raw: unknown, field: string): NetworkRouter {
  const r = expectObject(raw, field);
  const linkLocal = parseIpv6Address(r.linkLocal, `${field}.linkLocal`);
  if (!linkLocal.startsWith("fe80:"))
    throw new InvalidArgumentError(`${field}.linkLocal`, `${linkLocal} is not a link-local address (fe80::/64)`);
  const flag = (name: string) => {
    const value = r[name];
    if (value !== undefined && typeof value !== "boolean") throw new InvalidArgumentError(`${field}.${name}`, "expected true or false");
    return value !== false;
  };
  return {
    mac: parseMac(r.mac, `${field}.mac`),
    linkLocal,
    requireManagedFlag: flag("requireManagedFlag"),
    onlyNetworkPrefix: flag("onlyNetworkPrefix"),
  };
}

export interface DesiredNic {
  networkId: string;
  mac: Mac;
  ipv6: string[];
  ipv4: string[];
  model?: string;
}

export interface DesiredVm {
  uuid: string;
  nics: DesiredNic[];
}

export interface DesiredState {
  networks: DesiredNetwork[];
  vms: DesiredVm[];
}

export const SCHEMA_VERSION = 1;

export function emptyDesiredState(): DesiredState {
  return { networks: [], vms: [] };
}

export function findNetwork(state: DesiredState, networkId: string): DesiredNetwork | undefined {
  return state.networks.find((network) => network.networkId === networkId);
}

export function findNic(state: DesiredState, mac: string): { vm: DesiredVm; nic: DesiredNic } | undefined {
  for (const vm of state.vms) {
    const nic = vm.nics.find((candidate) => candidate.mac === mac);
    if (nic !== undefined) return { vm, nic };
  }
  return undefined;
}

/** Returns a new state with `network` added or replaced (by id). */
export function withNetwork(state: DesiredState, network: DesiredNetwork): DesiredState {
  return { ...state, networks: [...state.networks.filter((n) => n.networkId !== network.networkId), network] };
}

export function withoutNetwork(state: DesiredState, networkId: string): DesiredState {
  return { ...state, networks: state.networks.filter((n) => n.networkId !== networkId) };
}

/** Returns a new state with `nic` on VM `vmUuid`, replacing any NIC with the same MAC anywhere. */
export function withNic(state: DesiredState, vmUuid: string, nic: DesiredNic): DesiredState {
  const vms = state.vms.map((vm) => ({ ...vm, nics: vm.nics.filter((n) => n.mac !== nic.mac) }));
  const vm = vms.find((candidate) => candidate.uuid === vmUuid);
  if (vm === undefined) vms.push({ uuid: vmUuid, nics: [nic] });
  else vm.nics.push(nic);
  return { ...state, vms: vms.filter((candidate) => candidate.nics.length > 0) };
}

export function withoutNic(state: DesiredState, mac: string): DesiredState {
  const vms = state.vms.map((vm) => ({ ...vm, nics: vm.nics.filter((n) => n.mac !== mac) }));
  return { ...state, vms: vms.filter((vm) => vm.nics.length > 0) };
}

export function nicsOnNetwork(state: DesiredState, networkId: string): DesiredNic[] {
  return state.vms.flatMap((vm) => vm.nics.filter((nic) => nic.networkId === networkId));
}

/**
 * Re-validates a persisted state with the same parsers as the protocol edge, so a hand-edited
 * or corrupt file can never put an unchecked name or address into a firewall rule.
 */
export function parseDesiredState(raw: unknown): DesiredState {
  const root = expectObject(raw, "state");
  const networks = expectArray(root.networks, "state.networks").map((entry, index) => {
    const field = `state.networks[${index}]`;
    const n = expectObject(entry, field);
    const network = parseIpv6Network(expectObject(n.network, `${field}.network`).cidr, `${field}.network.cidr`);
    const parsed: DesiredNetwork = {
      networkId: expectString(n.networkId, `${field}.networkId`),
      network,
      bridge: parseInterfaceName(n.bridge, `${field}.bridge`),
      trustedPorts: expectArray(n.trustedPorts, `${field}.trustedPorts`).map((port, i) =>
        parseInterfaceName(port, `${field}.trustedPorts[${i}]`),
      ),
    };
    if (n.gateway !== undefined) parsed.gateway = parseAddressInNetwork(n.gateway, network, `${field}.gateway`);
    if (n.vlan !== undefined) parsed.vlan = parseVlanId(n.vlan, `${field}.vlan`);
    if (n.mtu !== undefined) parsed.mtu = parseMtu(n.mtu, `${field}.mtu`);
    if (n.router !== undefined) parsed.router = parseNetworkRouter(n.router, `${field}.router`);
    return parsed;
  });
  const vms = expectArray(root.vms, "state.vms").map((entry, index) => {
    const field = `state.vms[${index}]`;
    const vm = expectObject(entry, field);
    return {
      uuid: parseUuid(vm.uuid, `${field}.uuid`),
      nics: expectArray(vm.nics, `${field}.nics`).map((nicEntry, i) => {
        const nicField = `${field}.nics[${i}]`;
        const nic = expectObject(nicEntry, nicField);
        const networkId = expectString(nic.networkId, `${nicField}.networkId`);
        const network = networks.find((n) => n.networkId === networkId);
        if (network === undefined) throw new InvalidArgumentError(`${nicField}.networkId`, `unknown network ${JSON.stringify(networkId)}`);
        const parsed: DesiredNic = {
          networkId,
          mac: parseMac(nic.mac, `${nicField}.mac`),
          ipv6: expectArray(nic.ipv6, `${nicField}.ipv6`).map((a, j) =>
            parseAddressInNetwork(a, network.network, `${nicField}.ipv6[${j}]`),
          ),
          ipv4: expectArray(nic.ipv4, `${nicField}.ipv4`).map((a, j) => parseIpv4Address(a, `${nicField}.ipv4[${j}]`)),
        };
        if (nic.model !== undefined) parsed.model = parseNicModel(nic.model, `${nicField}.model`);
        return parsed;
      }),
    };
  });
  return { networks, vms };
}

function expectObject(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new InvalidArgumentError(field, "expected an object");
  return value as Record<string, unknown>;
}

function expectArray(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) throw new InvalidArgumentError(field, "expected an array");
  return value;
}

function expectString(value: unknown, field: string): string {
  if (typeof value !== "string" || value.length === 0 || value.length > 256) {
    throw new InvalidArgumentError(field, "expected a non-empty string of at most 256 characters");
  }
  return value;
}

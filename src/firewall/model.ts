import type { InterfaceName, Mac } from "../addressing/index.js";

/**
 * The declarative firewall model (design section 4): which bridges are managed, which port of
 * each is the trusted router/uplink side, and every guest port with the addresses it may use.
 * Both backends (`nft/`, `xtables/`) render exactly this.
 */
export interface ManagedBridge {
  name: InterfaceName;
  /**
   * Ports where router traffic legitimately enters (the uplink or VLAN sub-interface, or the
   * virtual router's veth in a lab): the only place RAs and DHCPv6 replies may come from.
   */
  trustedPorts: InterfaceName[];
  /**
   * Device-name patterns of guest ports on this bridge (`vnet*`, `vif*`, `tap*`): a matching
   * device that has no rules yet is dropped (fail closed). Needed because a kernel without
   * bridge metadata in nftables (CONFIG_NFT_BRIDGE_META, `meta ibrname`; also what ebtables'
   * `--logical-in` needs on the nf_tables flavour) cannot tell which bridge a frame entered.
   * Where the kernel has it, every unknown port of the bridge is dropped regardless.
   */
  guestPortPatterns?: string[];
  /**
   * The network's router, when the management server names it (`network.ensure` `router`):
   * then RAs and DHCPv6 server messages entering from a trusted port are accepted only from
   * this router (and, as it says, only with the M flag and only the network's /64). Without
   * it, everything from a trusted port passes, as before.
   */
  router?: RouterPolicy;
}

export interface RouterPolicy {
  mac: Mac;
  /** The router's link-local address: the source of its RAs and DHCPv6 replies. */
  linkLocal: string;
  /** RAs must carry the M (managed) flag. */
  requireManagedFlag: boolean;
  /** When given, every prefix information option of an RA must be this /64 (`2001:db8:1:1::/64`). */
  prefix?: string;
}

export interface GuestPort {
  /** The guest's host-side device (tap/vnet/vif): traffic *from* the guest enters here. */
  device: InterfaceName;
  bridge: InterfaceName;
  mac: Mac;
  /** Link-local sources allowed; normally the EUI-64 of `mac`. */
  linkLocals: string[];
  /** Assigned global/ULA IPv6 addresses inside the network's /64. */
  ipv6: string[];
  /** Optional dual-stack IPv4 addresses. */
  ipv4: string[];
  /**
   * The shared /64 (`2001:db8:1:1::/64`). When given, every `ipv6` address must lie inside it;
   * without it they must at least share one /64.
   */
  network?: string;
}

export interface FirewallState {
  bridges: ManagedBridge[];
  ports: GuestPort[];
}

export type FirewallBackendName = "nft" | "xtables";

export interface DropCounter {
  packets: number;
  bytes: number;
}

/**
 * Why a frame was dropped: the one spelling of drop reasons for the firewall, the metrics, the
 * diagnostics and the lab.
 * - `ra`: a guest sent a router message (RA, Redirect, Router Renumbering);
 * - `dhcpv6Server`: a guest sent a DHCPv6 server or relay message;
 * - `spoof`: a wrong source MAC or IPv6 source, a foreign ND target, link-layer option or DAD
 *   claim, ND whose options the rules cannot bound, any other ethertype;
 * - `fragment`: fragmented or header-chain-truncated ICMPv6/DHCPv6 (RFC 6980/7112/7113);
 * - `ipv4`: DHCPv4 server replies and ARP/IPv4 spoofing;
 * - `mld`: a guest sent an MLD query (it would make itself the bridge's multicast router);
 * - `rogueRouter`: an RA or DHCPv6 server message from a trusted (uplink) port that is not from
 *   the network's named router, or not with its flag and prefix (counted on the uplink device).
 */
export const dropReasons = ["ra", "dhcpv6Server", "spoof", "fragment", "ipv4", "mld", "rogueRouter"] as const;
export type DropReason = (typeof dropReasons)[number];

/** Per-port drop counters, by reason (guest ports, and uplinks that dropped rogue router messages). */
export type PortCounters = { device: string } & Record<DropReason, DropCounter>;

/** Counters of a device that dropped nothing yet. */
export function zeroCounters(device: string): PortCounters {
  const counters = { device } as PortCounters;
  for (const reason of dropReasons) counters[reason] = { packets: 0, bytes: 0 };
  return counters;
}

/** Packets per reason, for reports (`host.diagnose` `vifs[].drops`). */
export function dropPackets(counters: PortCounters): Record<DropReason, number> {
  const packets = {} as Record<DropReason, number>;
  for (const reason of dropReasons) packets[reason] = counters[reason].packets;
  return packets;
}

export interface ApplyResult {
  /** False when the live ruleset already matched: nothing was written. */
  changed: boolean;
  addedPorts: string[];
  updatedPorts: string[];
  removedPorts: string[];
}

/**
 * Orders ports by device name in code-point order: interface names are ASCII, and
 * localeCompare would load ICU's collation data into the daemon (2.6 MB of RSS) to sort them.
 */
export function byDevice(a: { device: string }, b: { device: string }): number {
  return a.device < b.device ? -1 : a.device > b.device ? 1 : 0;
}

export interface Firewall {
  readonly backend: FirewallBackendName;
  /**
   * Converges the live ruleset to exactly `desired` (reads it, applies only the difference).
   * With `dryRun` it only reports what it would change (`v6agent diag`), writing nothing.
   */
  reconcile(desired: FirewallState, options?: { dryRun?: boolean }): Promise<ApplyResult>;
  /** Adds or replaces one port in one atomic step, without reading the whole ruleset. */
  upsertPort(port: GuestPort): Promise<void>;
  /** Removes one port's rules (idempotent). */
  removePort(device: string): Promise<void>;
  /** Adds a managed bridge (fail closed for its unknown ports) or updates its trusted ports. */
  ensureBridge(bridge: ManagedBridge): Promise<void>;
  removeBridge(name: string): Promise<void>;
  /** What is installed now, as the model. */
  readLive(): Promise<FirewallState>;
  counters(): Promise<PortCounters[]>;
  /** Removes every rule and chain this agent created, and nothing else. */
  removeAll(): Promise<void>;
  /**
   * What the other backend of this agent has live in this namespace (an earlier run with the
   * other backend), described for a person; empty when nothing. Reconcile removes it after its
   * own rules are in place, so two rule sets never judge the same ports for long.
   */
  otherBackendRules(): Promise<string[]>;
}

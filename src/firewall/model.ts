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

/** Per-port drop counters, by reason. */
export interface PortCounters {
  device: string;
  ra: DropCounter;
  dhcpv6Server: DropCounter;
  spoof: DropCounter;
  /** Fragmented or header-chain-truncated ICMPv6/DHCPv6 (RFC 6980/7113). */
  fragment: DropCounter;
  /** DHCPv4 server replies and ARP/IPv4 spoofing. */
  ipv4: DropCounter;
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
}

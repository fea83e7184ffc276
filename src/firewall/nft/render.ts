import { createHash } from "node:crypto";
import type { FirewallState, GuestPort, ManagedBridge } from "../model.js";
import { expand } from "../validate.js";

/**
 * Pure rendering of the port policy (design section 4) into nft scripts for `nft -f -`.
 * Everything lives in `table bridge v6agent`; guest traffic is dispatched by `iifname` through
 * the `ports` verdict map into one chain per port, whose addresses live in per-port sets.
 *
 * Every rule carries `comment "v6a:<hash>"` (a hash of its text) so reconcile can tell, from the
 * live ruleset alone, whether a chain still holds exactly the rules we would write.
 *
 * Checked against nftables 1.0.6: there is no `icmpv6 taddr` yet, so ND targets and link-layer
 * options are raw `@th` payload loads at fixed ICMPv6 offsets; there is no bridge conntrack, so
 * fragments are judged on what the first fragment shows.
 */

export const TABLE = "v6agent";
const T = `bridge ${TABLE}`;

/** What the kernel offers; decided once by probing (see apply.ts). */
export interface NftCapabilities {
  /** `meta ibrname` (CONFIG_NFT_BRIDGE_META): lets us drop every unknown port of a bridge. */
  bridgeMeta: boolean;
}

export const counterKinds = ["ra", "dhcp6", "spoof", "frag", "ipv4"] as const;
export type CounterKind = (typeof counterKinds)[number];

/** Names of every object that belongs to one port. */
export function portObjects(device: string) {
  return {
    chain: `port_${device}`,
    macSet: `mac_${device}`,
    ip6Set: `ip6_${device}`,
    ip4Set: `ip4_${device}`,
    bridgeSet: `portbr_${device}`,
    counter: (kind: CounterKind) => `${kind}_${device}`,
  };
}

export function bridgeObjects(name: string) {
  return { chain: `bridge_${name}`, trustedSet: `trusted_${name}`, guestSet: `guests_${name}`, counter: `unknown_${name}` };
}

/** DHCPv6 message types a client may send to port 547 (RFC 8415 §7.3): all others are server/relay. */
const DHCPV6_CLIENT_TYPES = "{ 1, 3-6, 8, 9, 11 }";

export function ruleComment(text: string): string {
  return `v6a:${createHash("sha256").update(text).digest("hex").slice(0, 12)}`;
}

function withComment(text: string): string {
  return `${text} comment "${ruleComment(text)}"`;
}

/** The static skeleton: table, dispatch map, shared helper chains and the base chain. */
export function renderSkeletonRules(): { chain: string; rules: string[] }[] {
  return [
    {
      // A first fragment is accepted only when its whole UDP/TCP header is present (a failed
      // load ends the rule, so a truncated header falls through to the port's drop) and it is
      // not DHCPv6 (RFC 7113, RFC 7112).
      chain: "first_fragment_udp",
      rules: ["udp sport != 547 udp dport != { 546, 547 } accept"],
    },
    {
      chain: "first_fragment_tcp",
      // Byte 16..19 of the TCP header (checksum, urgent pointer): readable means the fixed header is whole.
      rules: ["@th,128,32 >= 0x0 accept"],
    },
    { chain: "prerouting", rules: ["iifname vmap @ports", "jump bridges"] },
  ];
}

export function renderSkeleton(): string {
  const lines = [
    `add table ${T}`,
    `add map ${T} ports { type ifname : verdict; }`,
    `add chain ${T} prerouting { type filter hook prerouting priority -300; policy accept; }`,
    `add chain ${T} bridges`,
  ];
  for (const { chain, rules } of renderSkeletonRules()) {
    if (chain !== "prerouting") lines.push(`add chain ${T} ${chain}`);
    lines.push(`flush chain ${T} ${chain}`);
    for (const rule of rules) lines.push(`add rule ${T} ${chain} ${withComment(rule)}`);
  }
  return lines.join("\n");
}

/** The rules of one managed bridge's chain: trusted ports pass, unknown guest ports drop. */
export function renderBridgeRules(bridge: ManagedBridge, caps: NftCapabilities): string[] {
  const o = bridgeObjects(bridge.name);
  const rules = [`iifname @${o.trustedSet} accept`, `iifname @${o.guestSet} counter name "${o.counter}" drop`];
  if (caps.bridgeMeta) rules.push(`meta ibrname "${bridge.name}" counter name "${o.counter}" drop`);
  return rules;
}

export function renderBridge(bridge: ManagedBridge, caps: NftCapabilities): string {
  const o = bridgeObjects(bridge.name);
  const lines = [
    `add set ${T} ${o.trustedSet} { type ifname; }`,
    `flush set ${T} ${o.trustedSet}`,
    `add set ${T} ${o.guestSet} { type ifname; flags interval; }`,
    `flush set ${T} ${o.guestSet}`,
    `add counter ${T} ${o.counter}`,
    `add chain ${T} ${o.chain}`,
    `flush chain ${T} ${o.chain}`,
  ];
  if (bridge.trustedPorts.length > 0) lines.push(`add element ${T} ${o.trustedSet} { ${bridge.trustedPorts.map(quote).join(", ")} }`);
  const patterns = bridge.guestPortPatterns ?? [];
  if (patterns.length > 0) lines.push(`add element ${T} ${o.guestSet} { ${patterns.map(quote).join(", ")} }`);
  for (const rule of renderBridgeRules(bridge, caps)) lines.push(`add rule ${T} ${o.chain} ${withComment(rule)}`);
  return lines.join("\n");
}

/** The `bridges` chain: one jump per managed bridge (rewritten whole; it is tiny). */
export function renderBridgesChainRules(names: readonly string[]): string[] {
  return [...names].sort().map((name) => `jump ${bridgeObjects(name).chain}`);
}

export function renderBridgesChain(names: readonly string[]): string {
  return [`flush chain ${T} bridges`, ...renderBridgesChainRules(names).map((r) => `add rule ${T} bridges ${withComment(r)}`)].join("\n");
}

/** Removes a bridge's chain and sets (its jump must already be gone from `bridges`). */
export function renderBridgeRemoval(name: string): string {
  const o = bridgeObjects(name);
  return [
    `add chain ${T} ${o.chain}`,
    `flush chain ${T} ${o.chain}`,
    `delete chain ${T} ${o.chain}`,
    `add set ${T} ${o.trustedSet} { type ifname; }`,
    `delete set ${T} ${o.trustedSet}`,
    `add set ${T} ${o.guestSet} { type ifname; flags interval; }`,
    `delete set ${T} ${o.guestSet}`,
    `add counter ${T} ${o.counter}`,
    `delete counter ${T} ${o.counter}`,
  ].join("\n");
}

/** The rules of one guest port's chain, in order. Comments say which policy row each enforces. */
export function renderPortRules(port: GuestPort): string[] {
  const o = portObjects(port.device);
  const c = (kind: CounterKind) => `counter name "${o.counter(kind)}" drop`;
  const mac = `0x${port.mac.replaceAll(":", "")}`;
  const ownAddresses = [...port.linkLocals, ...port.ipv6].map(ipv6Integer);
  return [
    // Source MAC pinned.
    `ether saddr != @${o.macSet} ${c("spoof")}`,
    // Only IPv6, IPv4 and ARP: a VLAN tag or any other ethertype could hide the rest.
    `ether type != { ip6, ip, arp } ${c("spoof")}`,
    // IPv6 source: own link-local and assigned addresses, or :: for DAD to ff02::/16.
    `ether type ip6 ip6 saddr :: ip6 daddr != ff02::/16 ${c("spoof")}`,
    `ether type ip6 ip6 saddr != :: ip6 saddr != @${o.ip6Set} ${c("spoof")}`,
    // RFC 6980: no fragmented ICMPv6 (first or later fragments).
    `ether type ip6 exthdr frag exists meta l4proto ipv6-icmp ${c("frag")}`,
    // RFC 7112/7113: a first fragment must carry its whole header chain and not be DHCPv6.
    `ether type ip6 frag frag-off 0 meta l4proto udp jump first_fragment_udp`,
    `ether type ip6 frag frag-off 0 meta l4proto tcp jump first_fragment_tcp`,
    `ether type ip6 frag frag-off 0 ${c("frag")}`,
    // RA-Guard (RFC 6105): RA, Redirect and Router Renumbering, behind any extension headers
    // (meta l4proto walks the header chain).
    `ether type ip6 meta l4proto ipv6-icmp icmpv6 type { nd-router-advert, nd-redirect, router-renumbering } ${c("ra")}`,
    // DHCPv6-Shield (RFC 7610): anything to the client port, anything from the server port,
    // and server/relay message types sent to the server port.
    `ether type ip6 meta l4proto udp udp dport 546 ${c("dhcp6")}`,
    `ether type ip6 meta l4proto udp udp sport 547 ${c("dhcp6")}`,
    `ether type ip6 meta l4proto udp udp dport 547 @th,64,8 != ${DHCPV6_CLIENT_TYPES} ${c("dhcp6")}`,
    // ND: an NA's target (ICMPv6 bytes 8..23) must be one of our addresses.
    `ether type ip6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-advert @th,64,128 != { ${ownAddresses.join(", ")} } ${c("spoof")}`,
    // NS/NA: the first option (byte 24), or the one after a nonce option (RFC 7527), when it is a
    // link-layer address option, must carry our MAC; any other first option is refused.
    `ether type ip6 meta l4proto ipv6-icmp icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } @th,192,8 { 1, 2 } @th,208,48 != ${mac} ${c("spoof")}`,
    `ether type ip6 meta l4proto ipv6-icmp icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } @th,192,16 0x0e01 @th,256,8 { 1, 2 } @th,272,48 != ${mac} ${c("spoof")}`,
    `ether type ip6 meta l4proto ipv6-icmp icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } @th,192,8 != { 1, 2, 14 } ${c("spoof")}`,
    // RS: its only option is the source link-layer address (byte 8).
    `ether type ip6 meta l4proto ipv6-icmp icmpv6 type nd-router-solicit @th,64,8 1 @th,80,48 != ${mac} ${c("spoof")}`,
    `ether type ip6 meta l4proto ipv6-icmp icmpv6 type nd-router-solicit @th,64,8 != 1 ${c("spoof")}`,
    // Everything else from our addresses passes, provided the header chain parsed (a failed
    // `meta l4proto` load falls through to the final drop).
    `ether type ip6 meta l4proto != 255 accept`,
    // Dual stack: ARP and IPv4 source pinned, DHCPv4 server replies dropped.
    `ether type arp arp saddr ether != @${o.macSet} ${c("ipv4")}`,
    `ether type arp arp saddr ip != 0.0.0.0 arp saddr ip != @${o.ip4Set} ${c("ipv4")}`,
    `ether type arp accept`,
    `ether type ip meta l4proto udp udp sport 67 ${c("ipv4")}`,
    `ether type ip meta l4proto udp udp dport 68 ${c("ipv4")}`,
    `ether type ip ip saddr 0.0.0.0 ip daddr 255.255.255.255 meta l4proto udp udp sport 68 udp dport 67 accept`,
    `ether type ip ip saddr != @${o.ip4Set} ${c("ipv4")}`,
    `ether type ip accept`,
    // Unparseable IPv6 header chains end here.
    c("frag"),
  ];
}

/** One atomic transaction that creates or replaces a port (chain, sets and map entry together). */
export function renderPortUpsert(port: GuestPort): string {
  const o = portObjects(port.device);
  const lines = [
    `add chain ${T} ${o.chain}`,
    `flush chain ${T} ${o.chain}`,
    ...portSets(port).flatMap(({ name, type, elements }) => {
      const out = [`add set ${T} ${name} { type ${type}; }`, `flush set ${T} ${name}`];
      if (elements.length > 0)
        out.push(`add element ${T} ${name} { ${elements.map((e) => (type === "ifname" ? quote(e) : e)).join(", ")} }`);
      return out;
    }),
    ...counterKinds.map((kind) => `add counter ${T} ${o.counter(kind)}`),
    ...renderPortRules(port).map((rule) => `add rule ${T} ${o.chain} ${withComment(rule)}`),
    `add element ${T} ports { ${quote(port.device)} : jump ${o.chain} }`,
  ];
  return lines.join("\n");
}

/** The sets of a port and their element types. */
export function portSetTypes(device: string): { name: string; type: string }[] {
  const o = portObjects(device);
  return [
    { name: o.macSet, type: "ether_addr" },
    { name: o.ip6Set, type: "ipv6_addr" },
    { name: o.ip4Set, type: "ipv4_addr" },
    { name: o.bridgeSet, type: "ifname" },
  ];
}

/** The sets of a port with their elements (unquoted, as `nft -j list` returns them). */
export function portSets(port: GuestPort): { name: string; type: string; elements: string[] }[] {
  const elements = [[port.mac], [...port.linkLocals, ...port.ipv6], [...port.ipv4], [port.bridge]];
  return portSetTypes(port.device).map((set, i) => ({ ...set, elements: elements[i] ?? [] }));
}

/**
 * Removes a port in one transaction, idempotently: nft 1.0.6 has no `destroy`, so each object
 * is first added (a no-op when it exists) and then deleted; the map entry goes first so the
 * chain is no longer referenced.
 */
export function renderPortRemoval(device: string): string {
  const o = portObjects(device);
  return [
    `add chain ${T} ${o.chain}`,
    `add element ${T} ports { ${quote(device)} : jump ${o.chain} }`,
    `delete element ${T} ports { ${quote(device)} }`,
    `flush chain ${T} ${o.chain}`,
    `delete chain ${T} ${o.chain}`,
    ...portSetTypes(device).flatMap(({ name, type }) => [`add set ${T} ${name} { type ${type}; }`, `delete set ${T} ${name}`]),
    ...counterKinds.flatMap((kind) => [`add counter ${T} ${o.counter(kind)}`, `delete counter ${T} ${o.counter(kind)}`]),
  ].join("\n");
}

/** The whole desired state as one transaction, from an empty (or absent) table. */
export function renderState(state: FirewallState, caps: NftCapabilities): string {
  return [
    renderSkeleton(),
    ...state.bridges.map((b) => renderBridge(b, caps)),
    renderBridgesChain(state.bridges.map((b) => b.name)),
    ...state.ports.map(renderPortUpsert),
  ].join("\n");
}

export function renderTableRemoval(): string {
  return [`add table ${T}`, `delete table ${T}`].join("\n");
}

function quote(name: string): string {
  return `"${name}"`;
}

/** An IPv6 address as the 128-bit integer literal a raw payload comparison needs. */
export function ipv6Integer(address: string): string {
  return `0x${expand(address).join("")}`;
}

import { nftDhcp6LogRule, nftDhcp6LogSet } from "../dhcp6-log.js";
import type { FirewallState, GuestPort, ManagedBridge } from "../model.js";
import { expand } from "../validate.js";

/**
 * Pure rendering of the port policy (design section 4) into nft scripts (one transaction each).
 * Everything lives in `table bridge v6agent`. A guest frame first goes through its own port's
 * chain, by `iifname` through the `ports` verdict map: only the checks that depend on the port
 * (its MAC, its addresses, its ND link-layer options and targets), none of which accepts. It
 * comes back to the base chain and, as a member of `guest_ports`, goes to the shared `guest`
 * chain for everything that does not depend on the port (RA-Guard, DHCPv6-Shield, fragments,
 * DHCPv4), which accepts what is left.
 *
 * Why the shared checks are not jumped to from each port chain: at the commit of any
 * transaction that adds a rule with a verdict, the kernel validates every chain reachable from
 * the base chain, through every element of the `ports` map and into every chain a port chain
 * jumps to, again for each port. Short port chains that jump nowhere but to the two-rule drop
 * chains keep that walk small, which is what a one-port change costs at 1,000 ports.
 *
 * Every rule carries `comment "v6a:<hash>"` (a hash of its text) so reconcile can tell, from the
 * live ruleset alone, whether a chain still holds exactly the rules we would write.
 *
 * Drops are counted per port and reason without a stateful object per port: every drop goes to
 * a shared `drop_<reason>` chain that adds the incoming port to the dynamic set
 * `drops_<reason>` (whose elements carry a counter) and drops. Named counter objects would be
 * 5 per port, and nft 1.0.6 fetches every stateful object of the table into its cache for any
 * transaction that adds a rule or a map element: at 1,000 ports that alone cost ~27 ms of every
 * one-port change. The drop itself is a rule of its own, so a packet is dropped even if the set
 * could not take its port (it is full).
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

/** The chain that belongs to one port (its counters are elements of the `drops_*` sets). */
export function portObjects(device: string) {
  return { chain: `port_${device}` };
}

/** The chain every drop of one reason goes to, and the set that counts it per port. */
export function dropObjects(kind: CounterKind) {
  return { chain: `drop_${kind}`, set: `drops_${kind}` };
}

/** Room for every port a host can have; a full set still drops (see the top of this file). */
const DROP_SET_SIZE = 65535;

export function bridgeObjects(name: string) {
  return { chain: `bridge_${name}`, trustedSet: `trusted_${name}`, guestSet: `guests_${name}`, counter: `unknown_${name}` };
}

const DHCPV6_CLIENT_TYPES = "{ 1, 3-6, 8, 9, 11 }";

/**
 * A rule's fingerprint: 48 bits of a fast non-cryptographic hash of its text (two 32-bit
 * multiply-xorshift lanes). It only has to tell our own renderings apart from one another and
 * from a rule edited by hand, and it is computed for every rule of every port on each reconcile
 * (9,000 at 1,000 ports), where SHA-256 through node:crypto cost ~40 ms.
 */
export function ruleComment(text: string): string {
  let a = 0x9e3779b9;
  let b = 0x85ebca6b;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  }
  a = Math.imul(a ^ (a >>> 15), 0x2c1b3c6d) ^ Math.imul(b ^ (b >>> 13), 0x297a2d39);
  b = Math.imul(b ^ (b >>> 16), 0x85ebca6b) ^ Math.imul(a ^ (a >>> 13), 0xc2b2ae35);
  return `v6a:${((b >>> 0) & 0xffff).toString(16).padStart(4, "0")}${(a >>> 0).toString(16).padStart(8, "0")}`;
}

function withComment(text: string): string {
  return `${text} comment "${ruleComment(text)}"`;
}

/** The static skeleton: table, dispatch map, shared helper chains and the base chain. */
export function renderSkeletonRules(): { chain: string; rules: string[] }[] {
  const drop = (kind: CounterKind) => `goto ${dropObjects(kind).chain}`;
  return [
    // Count the drop for the incoming port, then drop (also when the count could not be kept).
    ...counterKinds.map((kind) => ({ chain: dropObjects(kind).chain, rules: [`add @${dropObjects(kind).set} { iifname }`, "drop"] })),
    {
      // Everything that does not depend on the port, after the port's own chain passed the frame.
      chain: "guest",
      rules: [
        // DAD: the unspecified source only towards multicast.
        `ether type ip6 ip6 saddr :: ip6 daddr != ff02::/16 ${drop("spoof")}`,
        "ether type ip6 jump guest_ip6",
        "ether type ip6 accept",
        "ether type arp accept",
        "ether type ip jump guest_ip4",
        "ether type ip accept",
        // Any other ethertype (802.1Q tags included) could hide the rest.
        drop("spoof"),
      ],
    },
    {
      // Port-independent IPv6 checks.
      chain: "guest_ip6",
      rules: [
        // RFC 6980: no fragmented ICMPv6 (first or later fragments).
        `exthdr frag exists meta l4proto ipv6-icmp ${drop("frag")}`,
        // RFC 7112/7113: a first fragment must carry its whole header chain and not be DHCPv6.
        "frag frag-off 0 meta l4proto udp jump first_fragment_udp",
        "frag frag-off 0 meta l4proto tcp jump first_fragment_tcp",
        `frag frag-off 0 ${drop("frag")}`,
        // RA-Guard (RFC 6105): RA (134), Redirect (137), Router Renumbering (138), behind any
        // extension headers (meta l4proto walks the header chain).
        `meta l4proto ipv6-icmp icmpv6 type nd-router-advert ${drop("ra")}`,
        `meta l4proto ipv6-icmp icmpv6 type 137-138 ${drop("ra")}`,
        // DHCPv6-Shield (RFC 7610): anything to the client port, anything from the server port,
        // and to the server port only client message types.
        `meta l4proto udp udp dport 546 ${drop("dhcp6")}`,
        `meta l4proto udp udp sport 547 ${drop("dhcp6")}`,
        "meta l4proto udp udp dport 547 jump dhcp6_client_message",
        `meta l4proto udp udp dport 547 ${drop("dhcp6")}`,
        // NS/NA: a first option other than a link-layer address or a nonce is refused; RS may
        // carry only its source link-layer address.
        `meta l4proto ipv6-icmp icmpv6 type 135-136 @th,192,8 != 1-2 @th,192,8 != 14 ${drop("spoof")}`,
        `meta l4proto ipv6-icmp icmpv6 type nd-router-solicit @th,64,8 != 1 ${drop("spoof")}`,
        // A header chain that parsed goes back to the port chain; one that did not (a failed
        // `meta l4proto` load ends the rule) is dropped.
        "meta l4proto != 255 return",
        drop("frag"),
      ],
    },
    {
      chain: "guest_ip4",
      rules: [
        `meta l4proto udp udp sport 67 ${drop("ipv4")}`,
        `meta l4proto udp udp dport 68 ${drop("ipv4")}`,
        // The unspecified source (which port chains let through) only for a DHCPv4 request.
        "ip saddr 0.0.0.0 ip daddr 255.255.255.255 meta l4proto udp udp sport 68 udp dport 67 accept",
        `ip saddr 0.0.0.0 ${drop("ipv4")}`,
      ],
    },
    {
      // A first fragment is accepted only when its whole UDP/TCP header is present (a failed
      // load ends the rule, so a truncated header falls through to the drop) and it is not DHCPv6.
      chain: "first_fragment_udp",
      rules: ["udp sport != 547 udp dport != { 546, 547 } accept"],
    },
    {
      // DHCPv6 message types a client may send to the server port (RFC 8415 §7.3); each port's
      // are also copied, rate-limited, to the agent's DHCPv6 identity evidence (../dhcp6-log.ts).
      chain: "dhcp6_client_message",
      rules: [nftDhcp6LogRule(DHCPV6_CLIENT_TYPES), `@th,64,8 ${DHCPV6_CLIENT_TYPES} accept`],
    },
    {
      chain: "first_fragment_tcp",
      // Byte 16..19 of the TCP header (checksum, urgent pointer): readable means the fixed header is whole.
      rules: ["@th,128,32 >= 0x0 accept"],
    },
    { chain: "prerouting", rules: ["iifname vmap @ports", "iifname @guest_ports goto guest", "jump bridges"] },
  ];
}

export function renderSkeleton(): string {
  const lines = [
    `add table ${T}`,
    `add map ${T} ports { type ifname : verdict; }`,
    `add set ${T} guest_ports { type ifname; }`,
    nftDhcp6LogSet(T),
    ...counterKinds.map((kind) => `add set ${T} ${dropObjects(kind).set} { type ifname; size ${DROP_SET_SIZE}; flags dynamic; counter; }`),
    `add chain ${T} prerouting { type filter hook prerouting priority -300; policy accept; }`,
    `add chain ${T} bridges`,
  ];
  const skeleton = renderSkeletonRules();
  for (const { chain } of skeleton) {
    if (chain !== "prerouting") lines.push(`add chain ${T} ${chain}`);
    lines.push(`flush chain ${T} ${chain}`);
  }
  for (const { chain, rules } of skeleton) {
    for (const rule of rules) lines.push(`add rule ${T} ${chain} ${withComment(rule)}`);
  }
  return lines.join("\n");
}

/** The rules of one managed bridge's chain: trusted ports pass, unknown guest ports drop. */
export function renderBridgeRules(bridge: ManagedBridge, caps: NftCapabilities): string[] {
  const o = bridgeObjects(bridge.name);
  // With bridge metadata every unknown port of this bridge is dropped, and only of this bridge.
  // Without it, the name patterns are the fallback; they cannot tell bridges apart, so they are
  // not used where the precise rule exists (a vif* on a bridge we do not manage must pass).
  const unknown = caps.bridgeMeta ? `meta ibrname "${bridge.name}"` : `iifname @${o.guestSet}`;
  return [`iifname @${o.trustedSet} accept`, `${unknown} counter name "${o.counter}" drop`];
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

/**
 * The rules of one guest port's chain: only what depends on the port, and no accept (the frame
 * goes on to the shared `guest` chain). Few rules per port and no sets or jumps of its own keep
 * both a 1,000-port transaction and the kernel's validation at each commit small (nft 1.0.6
 * slows down quadratically with thousands of anonymous sets).
 */
export function renderPortRules(port: GuestPort): string[] {
  const c = (kind: CounterKind) => `goto ${dropObjects(kind).chain}`;
  const mac = `0x${port.mac.replaceAll(":", "")}`;
  const icmp = "ether type ip6 meta l4proto ipv6-icmp icmpv6 type";
  const ownAddresses = [...port.linkLocals, ...port.ipv6];
  // "Not one of ours" as a chain of != comparisons in one rule: no set object per port.
  const notOwn = (field: string, addresses: string[]) => addresses.map((a) => ` ${field} != ${a}`).join("");
  return [
    // Source MAC pinned.
    `ether saddr != ${port.mac} ${c("spoof")}`,
    // IPv6 source: own link-local and assigned addresses, or :: (DAD; `guest` checks where to).
    `ether type ip6 ip6 saddr != ::${notOwn("ip6 saddr", ownAddresses)} ${c("spoof")}`,
    // NS/NA (135-136): a link-layer option first (byte 24), or after a nonce option (RFC 7527),
    // must carry our MAC. RS: its source link-layer option (byte 8).
    `${icmp} 135-136 @th,192,8 1-2 @th,208,48 != ${mac} ${c("spoof")}`,
    `${icmp} 135-136 @th,192,16 0x0e01 @th,256,8 1-2 @th,272,48 != ${mac} ${c("spoof")}`,
    `${icmp} nd-router-solicit @th,64,8 1 @th,80,48 != ${mac} ${c("spoof")}`,
    // NA: the target (ICMPv6 bytes 8..23) must be one of our addresses.
    `${icmp} nd-neighbor-advert${notOwn("@th,64,128", ownAddresses.map(ipv6Integer))} ${c("spoof")}`,
    // Dual stack: ARP and IPv4 source pinned (0.0.0.0 only as `guest_ip4` allows it).
    `ether type arp arp saddr ether != ${port.mac} ${c("ipv4")}`,
    `ether type arp arp saddr ip != 0.0.0.0${notOwn("arp saddr ip", port.ipv4)} ${c("ipv4")}`,
    `ether type ip ip saddr != 0.0.0.0${notOwn("ip saddr", port.ipv4)} ${c("ipv4")}`,
  ];
}

/**
 * The `ports` map entry's comment records what readLive cannot take from the rules cheaply:
 * the port's bridge and MAC.
 */
export function portEntryComment(port: GuestPort): string {
  return `bridge=${port.bridge} mac=${port.mac}`;
}

/**
 * One atomic transaction that creates or replaces a port: its chain's rules and its dispatch
 * entry (deleted and re-added so its comment is current). Its drop counts are kept.
 */
export function renderPortUpsert(port: GuestPort): string {
  const o = portObjects(port.device);
  const device = quote(port.device);
  const lines = [
    `add chain ${T} ${o.chain}`,
    `flush chain ${T} ${o.chain}`,
    `add element ${T} guest_ports { ${device} }`,
    ...renderPortRules(port).map((rule) => `add rule ${T} ${o.chain} ${withComment(rule)}`),
    `add element ${T} ports { ${device} : jump ${o.chain} }`,
    `delete element ${T} ports { ${device} }`,
    `add element ${T} ports { ${device} comment "${portEntryComment(port)}" : jump ${o.chain} }`,
  ];
  return lines.join("\n");
}

/**
 * Removes a port in one transaction, idempotently: nft 1.0.6 has no `destroy`, so each object
 * is first added (a no-op when it exists) and then deleted; the map entry goes first so the
 * chain is no longer referenced. Its drop counts go with it.
 */
export function renderPortRemoval(device: string): string {
  const o = portObjects(device);
  return [
    `add chain ${T} ${o.chain}`,
    `add element ${T} ports { ${quote(device)} : jump ${o.chain} }`,
    `delete element ${T} ports { ${quote(device)} }`,
    `add element ${T} guest_ports { ${quote(device)} }`,
    `delete element ${T} guest_ports { ${quote(device)} }`,
    `flush chain ${T} ${o.chain}`,
    `delete chain ${T} ${o.chain}`,
    ...counterKinds.map((kind) => renderDropCountRemoval(kind, device)),
  ].join("\n");
}

/** Forgets one port's count of one drop reason (idempotently). */
export function renderDropCountRemoval(kind: CounterKind, device: string): string {
  const set = dropObjects(kind).set;
  return [`add element ${T} ${set} { ${quote(device)} }`, `delete element ${T} ${set} { ${quote(device)} }`].join("\n");
}

/** The whole desired state as one transaction, from an empty (or absent) table. */
export function renderState(state: FirewallState, caps: NftCapabilities): string {
  return [
    renderSkeleton(),
    ...state.bridges.map((b) => renderBridge(b, caps)),
    renderBridgesChain(state.bridges.map((b) => b.name)),
    renderPortsBlock(state.ports),
  ].join("\n");
}

/**
 * Many new ports at once, in nft's block syntax with one element command per map: the same
 * objects as `renderPortUpsert` for each port, but about a third cheaper for nft to parse than
 * one `add` command per rule (this is the 1000-port apply from an empty table).
 */
export function renderPortsBlock(ports: readonly GuestPort[]): string {
  if (ports.length === 0) return "";
  const lines = [`table ${T} {`];
  for (const port of ports) {
    lines.push(`\tchain ${portObjects(port.device).chain} {`);
    for (const rule of renderPortRules(port)) lines.push(`\t\t${withComment(rule)}`);
    lines.push("\t}");
  }
  lines.push("}");
  const elements = (render: (port: GuestPort) => string) => ports.map(render).join(", ");
  lines.push(
    `add element ${T} ports { ${elements((p) => `${quote(p.device)} comment "${portEntryComment(p)}" : jump ${portObjects(p.device).chain}`)} }`,
    `add element ${T} guest_ports { ${elements((p) => quote(p.device))} }`,
  );
  return lines.join("\n");
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

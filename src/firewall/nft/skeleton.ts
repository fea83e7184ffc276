import { nftDhcp6LogRule, nftDhcp6LogSet } from "../dhcp6-log.js";
import { type DropReason, dropReasons } from "../model.js";
import { dropObjects, PORT_SETS, ROUTER_SETS, T, withComment } from "./names.js";

/**
 * The shared part of `table bridge v6agent` (design section 4): every rule is here, once.
 * Per-port and per-uplink data live only in sets keyed by the incoming device, so adding or
 * removing a port is a handful of element adds and deletes in one transaction: no chain or rule
 * is written, the kernel validates no chain at its commit, and libnftables fetches no rules.
 *
 * A frame from a guest port (`guest_ports`) goes to `guest`, which checks it against the port's
 * elements: `port_mac` (ifname . ether), `port_ip6` (ifname . IPv6: link-locals and assigned),
 * `port_target` (the same addresses as raw 128-bit ND targets), `port_lladdr` (the MAC as raw
 * 48 bits, for ND link-layer options) and `port_ip4`. A frame from a trusted port goes to
 * `uplink`, which passes it unless the port's bridge names its router (`router_*` sets).
 *
 * Drops are counted per incoming port and reason without a stateful object per port: every
 * drop goes to a shared `drop_<reason>` chain that adds the port to the dynamic set
 * `drops_<reason>` (whose elements carry a counter) and drops, in a rule of its own, so a
 * packet is dropped even if the set could not take its port (it is full).
 *
 * Checked against nftables 1.0.6: no `icmpv6 taddr` yet, so ND targets and options are raw
 * `@th` loads (in `typeof` sets for the per-port values); there is no bridge conntrack, so
 * fragments are judged on what the first fragment shows. A raw load past the end of the packet
 * ends its rule without a match: rules that must fail closed test for presence instead.
 */

/** Room for every port a host can have; a full set still drops (see above). */
const DROP_SET_SIZE = 65535;

const DHCPV6_CLIENT_TYPES = "{ 1, 3-6, 8, 9, 11 }";

/**
 * ND (RS/NS/NA) options: at most this many, each exactly 8 bytes (what an Ethernet link-layer
 * address or a nonce option takes), so every option sits at a fixed offset the rules can read.
 * Legitimate ND carries at most two (a link-layer address and a nonce); anything else is
 * dropped, because the rules could not bound it.
 */
export const ND_MAX_OPTIONS = 3;
/** ICMPv6 byte where the options start: after the NS/NA target, after the RS reserved field. */
const ND_OPTIONS = { nsna: 24, rs: 8 } as const;

/** RA options the router guard walks (bytes after the 16-byte RA header); a longer RA is dropped. */
export const RA_OPTIONS_MAX = 256;
const RA_OPTIONS_START = 16;
const RA_OPTIONS_END = RA_OPTIONS_START + RA_OPTIONS_MAX;

const go = (reason: DropReason) => `goto ${dropObjects(reason).chain}`;
const bits = (byte: number) => byte * 8;

/** Checks of one ND message type's options at their fixed offsets (see ND_MAX_OPTIONS). */
function ndOptionRules(type: string, start: number): string[] {
  const rules: string[] = [];
  for (let i = 0; i < ND_MAX_OPTIONS; i++) {
    const at = start + 8 * i;
    // Present at all: it must be whole (8 bytes), of length 1, and a link-layer address
    // option (source 1, target 2) must carry the port's MAC.
    rules.push(`icmpv6 type ${type} @th,${bits(at)},8 >= 0 jump nd_whole_${at}`);
    rules.push(`icmpv6 type ${type} @th,${bits(at + 1)},8 != 1 ${go("spoof")}`);
    rules.push(`icmpv6 type ${type} @th,${bits(at)},8 1-2 iifname . @th,${bits(at + 2)},48 != @${PORT_SETS.lladdr} ${go("spoof")}`);
  }
  rules.push(`icmpv6 type ${type} @th,${bits(start + 8 * ND_MAX_OPTIONS)},8 >= 0 ${go("spoof")}`);
  return rules;
}

/** `nd_whole_<at>`: the 8-byte option at ICMPv6 byte `at` is all there, or the frame is dropped. */
function ndWholeChains(): { chain: string; rules: string[] }[] {
  const starts = new Set<number>();
  for (const start of Object.values(ND_OPTIONS)) for (let i = 0; i < ND_MAX_OPTIONS; i++) starts.add(start + 8 * i);
  return [...starts]
    .sort((a, b) => a - b)
    .map((at) => ({ chain: `nd_whole_${at}`, rules: [`@th,${bits(at + 7)},8 >= 0 return`, go("spoof")] }));
}

/**
 * Every prefix information option of an RA must be the network's /64: the options are walked
 * as the receiver walks them (type, length in 8-byte units), with the packet mark holding the
 * offset of the next option, because nft has no loop and a chain per offset would make the
 * kernel's validation of the table exponential. The mark of an RA that passes is left 0; only
 * RAs from guarded uplinks ever come here.
 */
function raPrefixRules(): string[] {
  const rules = [`meta mark set ${RA_OPTIONS_START}`];
  for (let at = RA_OPTIONS_START; at < RA_OPTIONS_END; at += 8) {
    const here = `meta mark ${at}`;
    const pio = `${here} @th,${bits(at)},8 3`;
    rules.push(
      `${pio} @th,${bits(at + 1)},8 != 4 ${go("rogueRouter")}`,
      `${pio} @th,${bits(at + 2)},8 != 64 ${go("rogueRouter")}`,
      `${pio} iifname . @th,${bits(at + 16)},64 != @${ROUTER_SETS.prefix} ${go("rogueRouter")}`,
      `${here} meta mark set meta mark . @th,${bits(at + 1)},8 map @ra_walk`,
      // Still here with a byte to read: a zero length, or an option past the walked area.
      `${here} @th,${bits(at)},8 >= 0 ${go("rogueRouter")}`,
    );
  }
  rules.push(`meta mark ${RA_OPTIONS_END} @th,${bits(RA_OPTIONS_END)},8 >= 0 ${go("rogueRouter")}`, "meta mark set 0 accept");
  return rules;
}

/** The walk's steps: from an option at `offset . length` to the next option's offset. */
export function raWalkElements(): string[] {
  const elements: string[] = [];
  for (let at = RA_OPTIONS_START; at < RA_OPTIONS_END; at += 8) {
    for (let length = 1; at + 8 * length <= RA_OPTIONS_END; length++) elements.push(`${at} . ${length} : ${at + 8 * length}`);
  }
  return elements;
}

/** Every shared chain and its rules, in order; `prerouting` is the base chain. */
export function skeletonRules(): { chain: string; rules: string[] }[] {
  return [
    // Count the drop for the incoming port, then drop (also when the count could not be kept).
    ...dropReasons.map((reason) => ({ chain: dropObjects(reason).chain, rules: [`add @${dropObjects(reason).set} { iifname }`, "drop"] })),
    {
      chain: "guest",
      rules: [
        `iifname . ether saddr != @${PORT_SETS.mac} ${go("spoof")}`,
        "ether type ip6 jump guest_ip6",
        "ether type ip6 accept",
        "ether type arp jump guest_arp",
        "ether type arp accept",
        "ether type ip jump guest_ip4",
        "ether type ip accept",
        // Any other ethertype (802.1Q tags included) could hide the rest.
        go("spoof"),
      ],
    },
    {
      chain: "guest_ip6",
      rules: [
        // Own link-local and assigned addresses, or the unspecified source (DAD, MLD before an
        // address exists) towards multicast only.
        `ip6 saddr != :: iifname . ip6 saddr != @${PORT_SETS.ip6} ${go("spoof")}`,
        `ip6 saddr :: ip6 daddr != ff02::/16 ${go("spoof")}`,
        // RFC 6980: no fragmented ICMPv6 (first or later fragments).
        `exthdr frag exists meta l4proto ipv6-icmp ${go("fragment")}`,
        // RFC 7112/7113: a first fragment must carry its whole header chain and not be DHCPv6.
        "frag frag-off 0 meta l4proto udp jump first_fragment_udp",
        "frag frag-off 0 meta l4proto tcp jump first_fragment_tcp",
        `frag frag-off 0 ${go("fragment")}`,
        // RA-Guard (RFC 6105): RA (134), Redirect (137), Router Renumbering (138), behind any
        // extension headers (meta l4proto walks the header chain).
        `meta l4proto ipv6-icmp icmpv6 type nd-router-advert ${go("ra")}`,
        `meta l4proto ipv6-icmp icmpv6 type 137-138 ${go("ra")}`,
        // MLD queries (v1 and v2 are both type 130) would make this port the bridge's multicast
        // router and let it expire other ports' memberships; only routers query.
        `meta l4proto ipv6-icmp icmpv6 type mld-listener-query ${go("mld")}`,
        // DHCPv6-Shield (RFC 7610): anything to the client port, anything from the server port,
        // and to the server port only client message types.
        `meta l4proto udp udp dport 546 ${go("dhcpv6Server")}`,
        `meta l4proto udp udp sport 547 ${go("dhcpv6Server")}`,
        "meta l4proto udp udp dport 547 jump dhcp6_client_message",
        `meta l4proto udp udp dport 547 ${go("dhcpv6Server")}`,
        // RS (133), NS (135), NA (136): their targets and options (RA, 134, is gone above).
        "meta l4proto ipv6-icmp icmpv6 type 133-136 goto guest_nd",
        // A header chain that parsed goes back to `guest`; one that did not (a failed
        // `meta l4proto` load ends the rule) is dropped.
        "meta l4proto != 255 return",
        go("fragment"),
      ],
    },
    {
      chain: "guest_nd",
      rules: [
        `icmpv6 type nd-neighbor-advert iifname . @th,64,128 != @${PORT_SETS.target} ${go("spoof")}`,
        // DAD (from ::) only for the port's own addresses: else a guest could deny another's.
        `icmpv6 type nd-neighbor-solicit ip6 saddr :: iifname . @th,64,128 != @${PORT_SETS.target} ${go("spoof")}`,
        ...ndOptionRules("135-136", ND_OPTIONS.nsna),
        ...ndOptionRules("nd-router-solicit", ND_OPTIONS.rs),
      ],
    },
    ...ndWholeChains(),
    {
      chain: "guest_arp",
      rules: [
        `iifname . arp saddr ether != @${PORT_SETS.mac} ${go("ipv4")}`,
        `arp saddr ip != 0.0.0.0 iifname . arp saddr ip != @${PORT_SETS.ip4} ${go("ipv4")}`,
      ],
    },
    {
      chain: "guest_ip4",
      rules: [
        `ip saddr != 0.0.0.0 iifname . ip saddr != @${PORT_SETS.ip4} ${go("ipv4")}`,
        `meta l4proto udp udp sport 67 ${go("ipv4")}`,
        `meta l4proto udp udp dport 68 ${go("ipv4")}`,
        // The unspecified source only for a DHCPv4 request.
        "ip saddr 0.0.0.0 ip daddr 255.255.255.255 meta l4proto udp udp sport 68 udp dport 67 accept",
        `ip saddr 0.0.0.0 ${go("ipv4")}`,
      ],
    },
    // A first fragment is accepted only when its whole UDP/TCP header is present (a failed
    // load ends the rule, so a truncated header falls through to the drop) and it is not DHCPv6.
    { chain: "first_fragment_udp", rules: ["udp sport != 547 udp dport != { 546, 547 } accept"] },
    // Byte 16..19 of the TCP header (checksum, urgent pointer): readable means the fixed header is whole.
    { chain: "first_fragment_tcp", rules: ["@th,128,32 >= 0x0 accept"] },
    // DHCPv6 message types a client may send to the server port (RFC 8415 §7.3); each port's
    // are also copied, rate-limited, to the agent's DHCPv6 identity evidence (../dhcp6-log.ts).
    {
      chain: "dhcp6_client_message",
      rules: [nftDhcp6LogRule(DHCPV6_CLIENT_TYPES), `@th,64,8 ${DHCPV6_CLIENT_TYPES} accept`],
    },
    {
      // Everything from a trusted port passes, unless its bridge names its router.
      chain: "uplink",
      rules: [`iifname != @${ROUTER_SETS.guarded} accept`, "ether type ip6 jump uplink_ip6", "accept"],
    },
    {
      chain: "uplink_ip6",
      rules: [
        "meta l4proto ipv6-icmp icmpv6 type nd-router-advert goto router_ra",
        "meta l4proto udp udp sport 547 goto router_dhcp6",
        // A first fragment whose ICMPv6 or UDP header is not in it could hide either (RFC
        // 7112): `meta l4proto` names the protocol even when its header lies past the end.
        "frag frag-off 0 meta l4proto ipv6-icmp @th,0,32 >= 0 return",
        "frag frag-off 0 meta l4proto udp @th,32,32 >= 0 return",
        `frag frag-off 0 meta l4proto { ipv6-icmp, udp } ${go("rogueRouter")}`,
        "frag frag-off 0 meta l4proto != 255 return",
        `frag frag-off 0 ${go("rogueRouter")}`,
      ],
    },
    {
      chain: "router_ra",
      rules: [
        // The router's RAs carry no extension header and are never fragmented (RFC 6980).
        `ip6 nexthdr != ipv6-icmp ${go("rogueRouter")}`,
        `iifname . ether saddr != @${ROUTER_SETS.mac} ${go("rogueRouter")}`,
        `iifname . ip6 saddr != @${ROUTER_SETS.linkLocal} ${go("rogueRouter")}`,
        // M (managed) is the top bit of ICMPv6 byte 5.
        `iifname @${ROUTER_SETS.managed} @th,40,1 0 ${go("rogueRouter")}`,
        `iifname @${ROUTER_SETS.prefixed} goto router_ra_prefix`,
        "accept",
      ],
    },
    { chain: "router_ra_prefix", rules: raPrefixRules() },
    {
      chain: "router_dhcp6",
      rules: [
        `iifname . ether saddr != @${ROUTER_SETS.mac} ${go("rogueRouter")}`,
        `iifname . ip6 saddr != @${ROUTER_SETS.linkLocal} ${go("rogueRouter")}`,
        "accept",
      ],
    },
    { chain: "prerouting", rules: [`iifname @${PORT_SETS.guests} goto guest`, "jump bridges"] },
  ];
}

/** The sets and maps of the skeleton, as `add` commands. */
function skeletonSets(): string[] {
  return [
    `add set ${T} ${PORT_SETS.guests} { type ifname; }`,
    `add set ${T} ${PORT_SETS.mac} { type ifname . ether_addr; }`,
    `add set ${T} ${PORT_SETS.lladdr} { typeof iifname . @th,16,48; }`,
    `add set ${T} ${PORT_SETS.ip6} { type ifname . ipv6_addr; }`,
    `add set ${T} ${PORT_SETS.target} { typeof iifname . @th,64,128; }`,
    `add set ${T} ${PORT_SETS.ip4} { type ifname . ipv4_addr; }`,
    `add set ${T} ${ROUTER_SETS.guarded} { type ifname; }`,
    `add set ${T} ${ROUTER_SETS.mac} { type ifname . ether_addr; }`,
    `add set ${T} ${ROUTER_SETS.linkLocal} { type ifname . ipv6_addr; }`,
    `add set ${T} ${ROUTER_SETS.managed} { type ifname; }`,
    `add set ${T} ${ROUTER_SETS.prefixed} { type ifname; }`,
    `add set ${T} ${ROUTER_SETS.prefix} { typeof iifname . @th,0,64; }`,
    `add map ${T} ra_walk { typeof meta mark . @th,8,8 : meta mark; }`,
    nftDhcp6LogSet(T),
    ...dropReasons.map(
      (reason) => `add set ${T} ${dropObjects(reason).set} { type ifname; size ${DROP_SET_SIZE}; flags dynamic; counter; }`,
    ),
  ];
}

/** The static skeleton: table, sets, shared chains and the base chain, (re)written whole. */
export function renderSkeleton(): string {
  const lines = [`add table ${T}`, ...skeletonSets()];
  lines.push(`add chain ${T} prerouting { type filter hook prerouting priority -300; policy accept; }`, `add chain ${T} bridges`);
  const skeleton = skeletonRules();
  for (const { chain } of skeleton) {
    if (chain !== "prerouting") lines.push(`add chain ${T} ${chain}`);
    lines.push(`flush chain ${T} ${chain}`);
  }
  for (const { chain, rules } of skeleton) for (const rule of rules) lines.push(`add rule ${T} ${chain} ${withComment(rule)}`);
  lines.push(`flush map ${T} ra_walk`, `add element ${T} ra_walk { ${raWalkElements().join(", ")} }`);
  return lines.join("\n");
}

/** Sets whose absence means the skeleton must be written again. */
export const SKELETON_SETS: readonly string[] = [...Object.values(ROUTER_SETS), ...Object.values(PORT_SETS), "ra_walk"];

export function renderTableRemoval(): string {
  return [`add table ${T}`, `delete table ${T}`].join("\n");
}

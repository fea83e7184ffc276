import { ip6tablesDhcp6LogRule } from "../dhcp6-log.js";
import type { DropReason, GuestPort, ManagedBridge } from "../model.js";
import { expand } from "../validate.js";
import { ndOptionProgram, raPrefixPrograms } from "./bpf.js";
import type { XRule } from "./ebtables.js";

/**
 * The L3 half of the xtables backend: ip6tables `raw` PREROUTING with `physdev`. Bridged IPv6
 * reaches it from the bridge's own PREROUTING hook (br_netfilter, `bridge-nf-call-ip6tables`),
 * which runs before the bridge learns or snoops, like ebtables `nat`; ip6tables walks the
 * extension-header chain, which ebtables' ip6 match does not. `PREROUTING` jumps (first) to
 * `V6AGENT`, which sends each guest port (`-g`, goto: its RETURN ends our part) to `V6A-<dev>`
 * and each guarded uplink to `V6R-<dev>`, and drops IPv6 from any other port of a managed
 * bridge (`-i <bridge>`: here the in-device is the bridge, the port is `physdev`).
 *
 * u32 offsets are from the IPv6 header; they are used only after a test that no extension
 * header precedes ICMPv6 (byte 6 = 58), and ND with extension headers is dropped outright, so a
 * raw offset can never be fooled by a shifted header.
 */

export const IP6_TABLE = { tool: "ip6", table: "raw" } as const;
export const IP6_MAIN = "V6AGENT";
export const ip6PortChain = (device: string) => `V6A-${device}`;
export const ip6TargetChain = (device: string) => `V6N-${device}`;
export const ip6RouterChain = (uplink: string) => `V6R-${uplink}`;

const DHCPV6_CLIENT_TYPES = "1,3:6,8,9,11";

const NO_EXT = '-m u32 --u32 "0x4>>0x8&0xff=0x3a"';
const NOT_NO_EXT = '-m u32 ! --u32 "0x4>>0x8&0xff=0x3a"';

const drop = (text: string, reason: DropReason): XRule => ({ text: `${text} -j DROP`, reason });

export function ip6PortRules(port: GuestPort): XRule[] {
  const allowed = [...port.linkLocals, ...port.ipv6];
  const icmp = (type: number) => `-p ipv6-icmp -m icmp6 --icmpv6-type ${type}`;
  const clientTypes = DHCPV6_CLIENT_TYPES.replaceAll(/\d+/g, (n) => `0x${Number(n).toString(16)}`);
  return [
    drop("-p ipv6-icmp -m frag", "fragment"),
    drop("-p udp -m frag --fragfirst -m multiport --ports 546,547", "fragment"),
    drop(icmp(134), "ra"),
    drop(icmp(137), "ra"),
    drop(icmp(138), "ra"),
    drop(icmp(130), "mld"),
    drop("-p udp -m udp --dport 546", "dhcpv6Server"),
    drop("-p udp -m udp --sport 547", "dhcpv6Server"),
    // To the server port: only client message types, and only with UDP right after the IPv6 header.
    drop(`-p udp -m udp --dport 547 -m u32 ! --u32 "0x4>>0x8&0xff=0x11&&0x30>>0x18=${clientTypes}"`, "dhcpv6Server"),
    // What passed is a client message: a rate-limited copy for the DHCPv6 identity evidence (../dhcp6-log.ts).
    { text: ip6tablesDhcp6LogRule() },
    // ND (RS, NS, NA) with extension headers is refused; then targets and options are checked.
    drop(`${icmp(133)} ${NOT_NO_EXT}`, "spoof"),
    drop(`${icmp(135)} ${NOT_NO_EXT}`, "spoof"),
    drop(`${icmp(136)} ${NOT_NO_EXT}`, "spoof"),
    { text: `${icmp(136)} ${NO_EXT} -j ${ip6TargetChain(port.device)}` },
    // DAD (from ::) only for the port's own addresses.
    { text: `-s ::/128 ${icmp(135)} ${NO_EXT} -j ${ip6TargetChain(port.device)}` },
    // Every option of an RS/NS/NA: 8 bytes, at most three, link-layer ones with the port's MAC
    // (one bpf program: u32 would take fourteen rules, and each rule makes every restore dearer).
    drop(`-p ipv6-icmp -m bpf --bytecode "${ndOptionProgram(port.mac)}"`, "spoof"),
    // Source: own addresses, or :: for DAD and MLD to ff02::/16; everything else is spoofed.
    ...allowed.map((address) => ({ text: `-s ${address}/128 -j RETURN` })),
    { text: "-s ::/128 -d ff02::/16 -j RETURN" },
    drop("", "spoof"),
  ].map((rule) => ({ ...rule, text: rule.text.trim() }));
}

/** NS/NA targets (IPv6 bytes 48-63): RETURN for each own address, else drop. */
export function ip6TargetRules(port: GuestPort): XRule[] {
  return [
    ...[...port.linkLocals, ...port.ipv6].map((address) => ({ text: `-m u32 --u32 "${u32Address(address, 48)}" -j RETURN` })),
    { text: "-j DROP", reason: "spoof" as const },
  ];
}

/**
 * The router guard of one trusted port, reached only when its bridge names its router: RAs and
 * DHCPv6 server messages only from the router's MAC and link-local, RAs without extension
 * headers, with the M flag and only the network's /64 when the router says so.
 */
export function ip6RouterRules(bridge: ManagedBridge): XRule[] {
  const router = bridge.router;
  if (router === undefined) return [];
  const ra = "-p ipv6-icmp -m icmp6 --icmpv6-type 134";
  const rules: XRule[] = [
    // Matches everything and does nothing: it records the policy for readLive.
    { text: `-m comment --comment "${routerComment(bridge)}"` },
    drop(`${ra} ${NOT_NO_EXT}`, "rogueRouter"),
    drop(`! -s ${router.linkLocal}/128 ${ra}`, "rogueRouter"),
    drop(`${ra} -m mac ! --mac-source ${router.mac}`, "rogueRouter"),
    drop(`! -s ${router.linkLocal}/128 -p udp -m udp --sport 547`, "rogueRouter"),
    drop(`-p udp -m udp --sport 547 -m mac ! --mac-source ${router.mac}`, "rogueRouter"),
  ];
  // M is the top bit of ICMPv6 byte 5 (IPv6 byte 45).
  if (router.requireManagedFlag) rules.push(drop(`${ra} -m u32 ! --u32 "0x2c>>0x10&0x80=0x80"`, "rogueRouter"));
  if (router.prefix !== undefined) {
    for (const program of raPrefixPrograms(router.prefix)) rules.push(drop(`${ra} -m bpf --bytecode "${program}"`, "rogueRouter"));
  }
  return rules;
}

/** The router policy as a rule comment: `v6agent router=<mac> ll=<address> managed=<0|1>[ prefix=<cidr>]`. */
export function routerComment(bridge: ManagedBridge): string {
  const router = bridge.router;
  if (router === undefined) return "";
  const prefix = router.prefix === undefined ? "" : ` prefix=${router.prefix}`;
  return `v6agent router=${router.mac} ll=${router.linkLocal} managed=${router.requireManagedFlag ? 1 : 0}${prefix}`;
}

/** The dispatch rule also records the port's bridge (ebtables has no comments; this is where readLive finds it). */
export function ip6DispatchRule(device: string, bridge: string): string {
  return `-m physdev --physdev-in ${device} -m comment --comment "v6agent bridge=${bridge}" -g ${ip6PortChain(device)}`;
}

/** A bridge's rules in the main chain, after every port's: its uplinks, then nothing else of it. */
export function ip6BridgeRules(bridge: ManagedBridge): string[] {
  return [
    ...bridge.trustedPorts.map((port) =>
      bridge.router === undefined
        ? `-m physdev --physdev-in ${port} -j RETURN`
        : `-m physdev --physdev-in ${port} -g ${ip6RouterChain(port)}`,
    ),
    `-i ${bridge.name} -j DROP`,
  ];
}

export function ip6PortLines(port: GuestPort): string[] {
  const chain = ip6PortChain(port.device);
  const target = ip6TargetChain(port.device);
  return [
    `:${target} - [0:0]`,
    `:${chain} - [0:0]`,
    ...ip6TargetRules(port).map((r) => `-A ${target} ${r.text}`),
    ...ip6PortRules(port).map((r) => `-A ${chain} ${r.text}`),
  ];
}

/** A 128-bit address as the four u32 tests of a match at byte `offset`. */
function u32Address(address: string, offset: number): string {
  const digits = expand(address).join("");
  return [0, 1, 2, 3].map((i) => `${hex(offset + i * 4)}=0x${digits.slice(i * 8, i * 8 + 8).replace(/^0+(?=.)/, "")}`).join("&&");
}

/** A number as ip6tables-save prints u32 numbers. */
function hex(value: number): string {
  return `0x${value.toString(16)}`;
}

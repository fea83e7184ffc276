import { ip6tablesDhcp6LogRule } from "../dhcp6-log.js";
import type { GuestPort, ManagedBridge } from "../model.js";
import { expand } from "../validate.js";

/**
 * Pure rendering of the port policy for ebtables (L2: MAC, ethertype, ARP, IPv4) and ip6tables
 * with physdev (L3: ip6tables walks the extension-header chain, ebtables' ip6 match does not).
 * Only our own chains are written; the built-in FORWARD/INPUT get one jump each, inserted once.
 * Our chains never ACCEPT: what passes RETURNs, so other software (xapi's FORWARD_vif* chains)
 * still judges the traffic.
 *
 * Rules are emitted exactly as `ebtables-save`/`ip6tables-save` print them, so reconcile can
 * compare live and desired chains line by line.
 */

export type CounterKind = "ra" | "dhcp6" | "spoof" | "frag" | "ipv4";

export interface XRule {
  /** The rule after `-A <chain> `, in save format. */
  text: string;
  /** Which per-port drop counter a DROP rule feeds. */
  kind?: CounterKind;
}

export const EB_MAIN = "V6AGENT";
export const IP6_MAIN = "V6AGENT";
export const ebPortChain = (device: string) => `V6A-${device}`;
export const ebBridgeChain = (bridge: string) => `V6B-${bridge}`;
export const ip6PortChain = (device: string) => `V6A-${device}`;
export const ip6TargetChain = (device: string) => `V6N-${device}`;

const DHCPV6_CLIENT_TYPES = "1,3:6,8,9,11";

export function ebPortRules(port: GuestPort): XRule[] {
  const rules: XRule[] = [
    { text: `-s ! ${port.mac} -j DROP`, kind: "spoof" },
    // RA/Redirect and DHCPv6 server traffic also stop here (ebtables' ip6 match skips extension
    // headers too), so the policy holds even if bridged IPv6 ever skips ip6tables; fragments,
    // ND options and sources need ip6tables.
    { text: "-p IPv6 --ip6-proto ipv6-icmp --ip6-icmp-type router-advertisement -j DROP", kind: "ra" },
    { text: "-p IPv6 --ip6-proto ipv6-icmp --ip6-icmp-type redirect -j DROP", kind: "ra" },
    { text: "-p IPv6 --ip6-proto udp --ip6-dport 546 -j DROP", kind: "dhcp6" },
    { text: "-p IPv6 --ip6-proto udp --ip6-sport 547 -j DROP", kind: "dhcp6" },
    { text: "-p IPv6 -j RETURN" },
    { text: `-p ARP --arp-mac-src ! ${port.mac} -j DROP`, kind: "ipv4" },
    { text: "-p ARP --arp-ip-src 0.0.0.0 -j RETURN" },
    ...port.ipv4.map((address) => ({ text: `-p ARP --arp-ip-src ${address} -j RETURN` })),
    { text: "-p ARP -j DROP", kind: "ipv4" },
    { text: "-p IPv4 --ip-proto udp --ip-sport 67 -j DROP", kind: "ipv4" },
    { text: "-p IPv4 --ip-proto udp --ip-dport 68 -j DROP", kind: "ipv4" },
    { text: "-p IPv4 --ip-src 0.0.0.0 --ip-dst 255.255.255.255 --ip-proto udp --ip-sport 68 --ip-dport 67 -j RETURN" },
    ...port.ipv4.map((address) => ({ text: `-p IPv4 --ip-src ${address} -j RETURN` })),
    { text: "-p IPv4 -j DROP", kind: "ipv4" },
    // Every other ethertype (802.1Q tags included) is refused.
    { text: "-j DROP", kind: "spoof" },
  ];
  return rules;
}

export function ebBridgeRules(bridge: ManagedBridge, bridgeMeta: boolean): XRule[] {
  const rules: XRule[] = bridge.trustedPorts.map((port) => ({ text: `-i ${port} -j RETURN` }));
  // Precise where the kernel can tell the bridge; by name pattern only where it cannot (see nft/render.ts).
  if (bridgeMeta) rules.push({ text: `--logical-in ${bridge.name} -j DROP` });
  else for (const pattern of bridge.guestPortPatterns ?? []) rules.push({ text: `-i ${pattern.replace(/\*$/, "+")} -j DROP` });
  return rules;
}

/**
 * A port's two rules in the main chain: the jump into its chain, then a RETURN so a frame its
 * chain let through does not fall on to the bridges' fail-closed rules (ebtables has no goto).
 */
export function ebDispatchRules(device: string): [string, string] {
  return [`-i ${device} -j ${ebPortChain(device)}`, `-i ${device} -j RETURN`];
}

/** A 128-bit address as the four u32 tests of a match at byte `offset`. */
function u32Address(address: string, offset: number): string {
  const hex = expand(address).join("");
  return [0, 1, 2, 3].map((i) => `${offset + i * 4}=0x${hex.slice(i * 8, i * 8 + 8).replace(/^0+(?=.)/, "")}`).join("&&");
}

function u32Mac(mac: string, offset: number): string {
  // MAC bytes at `offset`..`offset+5`: the low 16 bits of the word at offset-2, then one word.
  const hex = mac.replaceAll(":", "");
  return `${offset - 2}&0xffff=0x${hex.slice(0, 4).replace(/^0+(?=.)/, "")}&&${offset + 2}=0x${hex.slice(4).replace(/^0+(?=.)/, "")}`;
}

/**
 * ip6tables rules for one port. u32 offsets are from the IPv6 header; they are used only after
 * a test that no extension header precedes ICMPv6 (byte 6 = 58), and ND with extension headers
 * is dropped outright, so a raw offset can never be fooled by a shifted header.
 */
export function ip6PortRules(port: GuestPort): XRule[] {
  const c = (text: string, kind?: CounterKind): XRule => (kind === undefined ? { text } : { text, kind });
  const allowed = [...port.linkLocals, ...port.ipv6];
  const noExt = '-m u32 --u32 "0x4>>0x8&0xff=0x3a"';
  const notNoExt = '-m u32 ! --u32 "0x4>>0x8&0xff=0x3a"';
  return [
    c("-p ipv6-icmp -m frag -j DROP", "frag"),
    c("-p udp -m frag --fragfirst -m multiport --ports 546,547 -j DROP", "frag"),
    c("-p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP", "ra"),
    c("-p ipv6-icmp -m icmp6 --icmpv6-type 137 -j DROP", "ra"),
    c("-p ipv6-icmp -m icmp6 --icmpv6-type 138 -j DROP", "ra"),
    c("-p udp -m udp --dport 546 -j DROP", "dhcp6"),
    c("-p udp -m udp --sport 547 -j DROP", "dhcp6"),
    // To the server port: only client message types, and only with UDP right after the IPv6 header.
    c(
      `-p udp -m udp --dport 547 -m u32 ! --u32 "0x4>>0x8&0xff=0x11&&0x30>>0x18=${DHCPV6_CLIENT_TYPES.replaceAll(/\d+/g, (n) => `0x${Number(n).toString(16)}`)}" -j DROP`,
      "dhcp6",
    ),
    // What passed is a client message: a rate-limited copy for the DHCPv6 identity evidence (../dhcp6-log.ts).
    c(ip6tablesDhcp6LogRule()),
    // ND (RS, NS, NA) with extension headers is refused; then options and targets are checked.
    c(`-p ipv6-icmp -m icmp6 --icmpv6-type 133 ${notNoExt} -j DROP`, "spoof"),
    c(`-p ipv6-icmp -m icmp6 --icmpv6-type 135 ${notNoExt} -j DROP`, "spoof"),
    c(`-p ipv6-icmp -m icmp6 --icmpv6-type 136 ${notNoExt} -j DROP`, "spoof"),
    c(`-p ipv6-icmp -m icmp6 --icmpv6-type 136 ${noExt} -j ${ip6TargetChain(port.device)}`),
    // NS/NA link-layer option at ICMPv6 byte 24 (IPv6 byte 64); RS's at ICMPv6 byte 8 (IPv6 48).
    c(
      `-p ipv6-icmp -m icmp6 --icmpv6-type 135 -m u32 --u32 "0x40>>0x18=0x1:0x2" -m u32 ! --u32 "${hexU32(u32Mac(port.mac, 66))}" -j DROP`,
      "spoof",
    ),
    c(
      `-p ipv6-icmp -m icmp6 --icmpv6-type 136 -m u32 --u32 "0x40>>0x18=0x1:0x2" -m u32 ! --u32 "${hexU32(u32Mac(port.mac, 66))}" -j DROP`,
      "spoof",
    ),
    c(
      `-p ipv6-icmp -m icmp6 --icmpv6-type 133 -m u32 --u32 "0x30>>0x18=0x1" -m u32 ! --u32 "${hexU32(u32Mac(port.mac, 50))}" -j DROP`,
      "spoof",
    ),
    // Source: own addresses, or :: for DAD to ff02::/16; everything else is spoofed.
    ...allowed.map((address) => c(`-s ${address}/128 -j RETURN`)),
    c("-s ::/128 -d ff02::/16 -j RETURN"),
    c("-j DROP", "spoof"),
  ];
}

/** NA targets: RETURN for each own address, else drop. */
export function ip6TargetRules(port: GuestPort): XRule[] {
  return [
    ...[...port.linkLocals, ...port.ipv6].map((address) => ({ text: `-m u32 --u32 "${hexU32(u32Address(address, 48))}" -j RETURN` })),
    { text: "-j DROP", kind: "spoof" as const },
  ];
}

/** The dispatch rule also records the port's bridge (ebtables has no comments; this is where readLive finds it). */
export function ip6DispatchRule(device: string, bridge: string): string {
  return `-m physdev --physdev-in ${device} -m comment --comment "v6agent bridge=${bridge}" -j ${ip6PortChain(device)}`;
}

/** Which drop counter a rule feeds, from its text (the unit tests hold it to the kinds above). */
export function ruleKind(text: string): CounterKind | undefined {
  if (!text.endsWith("-j DROP")) return undefined;
  if (text.includes("-m frag")) return "frag";
  if (/router-advertisement|redirect|--icmpv6-type 13[478] -j/.test(text)) return "ra";
  if (/ 54[67]\b/.test(text)) return "dhcp6";
  if (/ARP|IPv4/.test(text)) return "ipv4";
  return "spoof";
}

/** u32 expressions as ip6tables-save prints them: every number in hex. */
function hexU32(expression: string): string {
  return expression.replaceAll(/(?<![0-9a-fx])(\d+)(?![0-9a-fx])/gi, (n) => `0x${Number(n).toString(16)}`);
}

/** A restore batch for one table. `lines` are already complete (`:chain`, `-A`, `-I`, `-D`, ...). */
export function restoreBatch(lines: readonly string[]): string {
  return ["*filter", ...lines, "COMMIT", ""].join("\n");
}

/** Creates (or, with --noflush, empties) a port's chains and fills them. */
export function ebPortLines(port: GuestPort): string[] {
  const chain = ebPortChain(port.device);
  return [`:${chain} RETURN`, ...ebPortRules(port).map((r) => `-A ${chain} ${r.text}`)];
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

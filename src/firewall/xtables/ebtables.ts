import type { DropReason, GuestPort, ManagedBridge } from "../model.js";

/**
 * The L2 half of the xtables backend: ebtables `nat` PREROUTING. That hook runs before the
 * bridge learns a frame's source MAC or its multicast snooping reads the frame (both happen
 * after the bridge's PREROUTING hooks), so a spoofed source MAC never moves an FDB entry and a
 * dropped MLD query never reaches the snooping. `PREROUTING` jumps (first) to `V6AGENT`, which
 * dispatches each guest port to `V6A-<dev>` and each bridge to `V6B-<br>`. Our chains never
 * ACCEPT: what passes RETURNs, so other software's rules still judge it.
 *
 * Rules are emitted exactly as `ebtables-save` prints them, so reconcile compares live and
 * desired chains line by line.
 */

export interface XRule {
  /** The rule after `-A <chain> `, in save format. */
  text: string;
  /** Which per-port drop counter a DROP rule feeds. */
  reason?: DropReason;
}

export const EB_TABLE = { tool: "eb", table: "nat" } as const;
export const EB_MAIN = "V6AGENT";
export const ebPortChain = (device: string) => `V6A-${device}`;
export const ebBridgeChain = (bridge: string) => `V6B-${bridge}`;
/** The router guard of one trusted port (its drops count as that device's `rogueRouter`). */
export const ebRouterChain = (uplink: string) => `V6R-${uplink}`;

const drop = (text: string, reason: DropReason): XRule => ({ text: `${text} -j DROP`, reason });

/**
 * A port's L2 checks: its source MAC, its ARP and IPv4 sources. All of IPv6 is ip6tables' (in
 * the same PREROUTING hook, so also before learning and snooping): it walks extension headers
 * and counts per port, and every rule less here makes each ebtables-restore cheaper (the tool
 * reads the whole table on every batch: ~14 ms more at 1,000 ports than at 10).
 */
export function ebPortRules(port: GuestPort): XRule[] {
  return [
    drop(`-s ! ${port.mac}`, "spoof"),
    { text: "-p IPv6 -j RETURN" },
    drop(`-p ARP --arp-mac-src ! ${port.mac}`, "ipv4"),
    { text: "-p ARP --arp-ip-src 0.0.0.0 -j RETURN" },
    ...port.ipv4.map((address) => ({ text: `-p ARP --arp-ip-src ${address} -j RETURN` })),
    drop("-p ARP", "ipv4"),
    drop("-p IPv4 --ip-proto udp --ip-sport 67", "ipv4"),
    drop("-p IPv4 --ip-proto udp --ip-dport 68", "ipv4"),
    { text: "-p IPv4 --ip-src 0.0.0.0 --ip-dst 255.255.255.255 --ip-proto udp --ip-sport 68 --ip-dport 67 -j RETURN" },
    ...port.ipv4.map((address) => ({ text: `-p IPv4 --ip-src ${address} -j RETURN` })),
    drop("-p IPv4", "ipv4"),
    // Every other ethertype (802.1Q tags included) is refused.
    { text: "-j DROP", reason: "spoof" },
  ];
}

/**
 * A bridge's chain: trusted ports return (through their router guard when the bridge names its
 * router), unknown guest ports are dropped: precisely where the kernel can tell the bridge, by
 * name pattern only where it cannot (see nft/bridges.ts).
 */
export function ebBridgeRules(bridge: ManagedBridge, bridgeMeta: boolean): XRule[] {
  const rules: XRule[] = [];
  for (const port of bridge.trustedPorts) {
    if (bridge.router !== undefined) rules.push({ text: `-i ${port} -j ${ebRouterChain(port)}` });
    rules.push({ text: `-i ${port} -j RETURN` });
  }
  if (bridgeMeta) rules.push({ text: `--logical-in ${bridge.name} -j DROP` });
  else for (const pattern of bridge.guestPortPatterns ?? []) rules.push({ text: `-i ${pattern.replace(/\*$/, "+")} -j DROP` });
  return rules;
}

/** L2 part of the router guard: RAs and DHCPv6 server messages only from the router's MAC and link-local. */
export function ebRouterRules(bridge: ManagedBridge): XRule[] {
  const router = bridge.router;
  if (router === undefined) return [];
  const ra = "--ip6-proto ipv6-icmp --ip6-icmp-type router-advertisement";
  const dhcp = "--ip6-proto udp --ip6-sport 547";
  return [
    drop(`-p IPv6 -s ! ${router.mac} ${ra}`, "rogueRouter"),
    drop(`-p IPv6 --ip6-src ! ${router.linkLocal} ${ra}`, "rogueRouter"),
    drop(`-p IPv6 -s ! ${router.mac} ${dhcp}`, "rogueRouter"),
    drop(`-p IPv6 --ip6-src ! ${router.linkLocal} ${dhcp}`, "rogueRouter"),
  ];
}

/**
 * A port's two rules in the main chain: the jump into its chain, then a RETURN so a frame its
 * chain let through does not fall on to the bridges' fail-closed rules (ebtables has no goto).
 */
export function ebDispatchRules(device: string): [string, string] {
  return [`-i ${device} -j ${ebPortChain(device)}`, `-i ${device} -j RETURN`];
}

/** Creates (or, with --noflush, empties) a port's chain and fills it. */
export function ebPortLines(port: GuestPort): string[] {
  const chain = ebPortChain(port.device);
  return [`:${chain} RETURN`, ...ebPortRules(port).map((r) => `-A ${chain} ${r.text}`)];
}

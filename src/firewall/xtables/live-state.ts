import type { FirewallState, GuestPort, ManagedBridge, RouterPolicy } from "../model.js";
import { ebPortChain } from "./ebtables.js";
import { IP6_MAIN, ip6PortChain, ip6RouterChain } from "./ip6tables.js";
import type { SavedTable } from "./live.js";

/** Our bridges and ports as the saved tables (ebtables `nat`, ip6tables `raw`) show them. */
export function liveState(eb: SavedTable, ip6: SavedTable): FirewallState {
  const bridges: ManagedBridge[] = [];
  for (const [chain, { rules }] of eb.chains) {
    if (!chain.startsWith("V6B-")) continue;
    const bridge = { name: chain.slice(4), trustedPorts: [] as string[] } as unknown as ManagedBridge;
    const patterns: string[] = [];
    for (const rule of rules) {
      const trusted = /^-i (\S+) -j RETURN$/.exec(rule);
      const guest = /^-i (\S+)\+ -j DROP$/.exec(rule);
      if (trusted) (bridge.trustedPorts as string[]).push(trusted[1] as string);
      if (guest) patterns.push(`${guest[1]}*`);
    }
    if (patterns.length > 0) bridge.guestPortPatterns = patterns;
    const router = bridge.trustedPorts
      .map((port) => routerOf(ip6.chains.get(ip6RouterChain(port))?.rules[0]))
      .find((found) => found !== undefined);
    if (router !== undefined) bridge.router = router;
    bridges.push(bridge);
  }
  const ports: GuestPort[] = [];
  for (const rule of ip6.chains.get(IP6_MAIN)?.rules ?? []) {
    const match = /--physdev-in (\S+) .*bridge=(\S+?)"? -g/.exec(rule);
    if (!match) continue;
    const device = match[1] as string;
    const ebRules = eb.chains.get(ebPortChain(device))?.rules ?? [];
    const addresses = (ip6.chains.get(ip6PortChain(device))?.rules ?? []).flatMap((r) => {
      const source = /^-s (\S+)\/128 -j RETURN$/.exec(r);
      return source ? [source[1] as string] : [];
    });
    ports.push({
      device,
      bridge: match[2],
      mac: /^-s ! (\S+) -j DROP$/.exec(ebRules[0] ?? "")?.[1] ?? "",
      linkLocals: addresses.filter((a) => a.startsWith("fe80:")),
      ipv6: addresses.filter((a) => !a.startsWith("fe80:")),
      ipv4: ebRules.flatMap((r) => /^-p IPv4 --ip-src (\S+) -j RETURN$/.exec(r)?.[1] ?? []).filter((a) => a !== "0.0.0.0"),
    } as GuestPort);
  }
  return { bridges, ports };
}

/** The policy a router chain's first rule records (ip6tables.ts `routerComment`). */
function routerOf(rule: string | undefined): RouterPolicy | undefined {
  const match = /^-m comment --comment "v6agent router=(\S+) ll=(\S+) managed=([01])(?: prefix=(\S+))?"$/.exec(rule ?? "");
  if (match === null) return undefined;
  const router = { mac: match[1], linkLocal: match[2], requireManagedFlag: match[3] === "1" } as RouterPolicy;
  if (match[4] !== undefined) router.prefix = match[4];
  return router;
}

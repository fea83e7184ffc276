/**
 * The DHCPv6 identity evidence's log rules (src/dhcp-observe reads what they log). Each guest
 * port's DHCPv6 client messages — only those the port policy lets through — are copied to
 * userspace over NFLOG: at most LOG_RATE per second per port, with a burst of LOG_BURST, and
 * never in the frame's way: a log rule has no verdict, and a copy the agent is too slow to take
 * is dropped by the kernel, not waited for.
 *
 * nft: one rule in the shared `dhcp6_client_message` chain, limited per incoming port through
 * the dynamic set `dhcp6_log` (one element, with its own limit, per port; elements expire).
 * xtables: one rule in each port's ip6tables chain (`-m limit` is per rule, so per port). Not
 * ebtables' NFLOG watcher: ebtables-nft 1.8.9 saves a `--limit` + `--nflog-group` rule without
 * its limit, so reconcile (which compares saved rules) could never agree with it.
 */

/** The NFLOG group the rules log to and the agent reads. */
export const DHCP6_LOG_GROUP = 547;
/** Copies per second per port, and the burst allowed before the rate applies. */
export const DHCP6_LOG_RATE = 4;
export const DHCP6_LOG_BURST = 8;
/** Names the copies, for anyone else reading the group (ulogd, tcpdump -i nflog:547). */
export const DHCP6_LOG_PREFIX = "v6agent-dhcp6";

/** The nft set that keeps each port's rate limit. */
export const NFT_DHCP6_LOG_SET = "dhcp6_log";

/** The `add set` line of the per-port limit set (in table `table`, e.g. `bridge v6agent`). */
export function nftDhcp6LogSet(table: string): string {
  return `add set ${table} ${NFT_DHCP6_LOG_SET} { type ifname; size 65535; flags dynamic,timeout; timeout 10m; }`;
}

/** The nft rule, for the chain where only client message types (`types`) to port 547 arrive. */
export function nftDhcp6LogRule(types: string): string {
  return `@th,64,8 ${types} add @${NFT_DHCP6_LOG_SET} { iifname limit rate ${DHCP6_LOG_RATE}/second burst ${DHCP6_LOG_BURST} packets } log prefix "${DHCP6_LOG_PREFIX}" group ${DHCP6_LOG_GROUP}`;
}

/** The ip6tables rule (save format), for a port's chain after its DHCPv6 checks. */
export function ip6tablesDhcp6LogRule(): string {
  return `-p udp -m udp --dport 547 -m limit --limit ${DHCP6_LOG_RATE}/sec --limit-burst ${DHCP6_LOG_BURST} -j NFLOG --nflog-prefix ${DHCP6_LOG_PREFIX} --nflog-group ${DHCP6_LOG_GROUP}`;
}

import { fileURLToPath } from "node:url";
import { eui64LinkLocal, type Mac } from "../../src/addressing/index.js";
import { run } from "../../src/exec.js";

/** Every crafted attack test/support/attacks/send_attack.py knows. */
export const attackKinds = [
  "ra",
  "ra-hbh",
  "ra-dstopt",
  "ra-many-ext",
  "ra-frag",
  "ra-atomic-frag",
  "ra-flood",
  "redirect",
  "dhcp6-advertise",
  "dhcp6-reply",
  "dhcp6-reply-other-port",
  "na-spoof",
  "na-flood",
  "spoof-mac",
  "spoof-ip",
  "dhcp4-offer",
  "arp-spoof",
  // Second generation (issue 16): ND link-layer options anywhere, DAD denial, MLD queries, FDB.
  "ns-lla-after-nonce",
  "ns-lla-after-two-nonces",
  "ns-lla-after-tlla",
  "ns-lla-after-pio",
  "ns-many-options",
  "na-lla-after-nonce",
  "dad-deny",
  "mld-query",
  "mld-query-specific",
  "spoof-router-mac",
] as const;
export type AttackKind = (typeof attackKinds)[number];

export interface AttackParams {
  /** The attacker's own MAC and link-local (frames carry them unless the attack spoofs). */
  src_mac: string;
  src_ll: string;
  victim_mac?: string;
  victim_ll?: string;
  victim_ip?: string;
  victim_ipv4?: string;
  /** For na-spoof: the address claimed (default victim_ip) and where to send it. */
  target?: string;
  dst_mac?: string;
  dst_ip?: string;
  /** The attacker's own global address (the source of its NS/NA). */
  src_ip?: string;
  /** A spoofed link-layer address carried in ND options. */
  lladdr?: string;
  router_mac?: string;
  /** An MLD group (the victim's solicited-node group). */
  group?: string;
  /** Rogue prefix, e.g. `2001:db8:bad::`. */
  prefix?: string;
  /** The RA's M flag. */
  managed?: boolean;
  /** RA options placed before the PIO. */
  ra_options?: ("mtu" | "rdnss" | "dnssl")[];
  count?: number;
  /** Seconds between frames. */
  interval?: number;
}

const script = fileURLToPath(new URL("./attacks/send_attack.py", import.meta.url));

/** Sends one attack from `iface` inside `netns` with scapy; resolves to the number of frames sent. */
export async function sendAttack(netns: string, iface: string, kind: AttackKind, params: AttackParams): Promise<number> {
  // Debian's python3 has scapy; the pyenv one on PATH does not.
  const { stdout } = await run("/usr/bin/python3", [script, iface, kind, JSON.stringify(params)], { netns, timeoutMs: 60_000 });
  return (JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as { sent: number }).sent;
}

/** A MAC that belongs to nobody: what the ND poisoning attacks claim an address is at. */
export const NOBODY_MAC = "52:54:00:00:10:0d";

/**
 * The parameters of one attack of `kind` by the guest with `attackerMac` (and, for the ND
 * attacks, its own address `attackerAddress`) against the victim: frames carry the attacker's
 * own MAC and link-local unless the attack spoofs, an NA spoof claims the victim's address,
 * the ND option attacks send the victim an NS (or an NA) from the attacker's own address whose
 * link-layer option, placed after other options, says the attacker is at NOBODY_MAC; rogue RAs
 * announce 2001:db8:bad::/64; 20 frames.
 */
export function attackOn(
  kind: AttackKind,
  attackerMac: string,
  victim: { mac: string; address: string },
  attackerAddress?: string,
): AttackParams {
  return {
    src_mac: attackerMac,
    src_ll: eui64LinkLocal(attackerMac as Mac),
    victim_mac: victim.mac,
    victim_ll: eui64LinkLocal(victim.mac as Mac),
    victim_ip: victim.address,
    ...(kind === "na-spoof" || kind === "dad-deny" ? { target: victim.address } : {}),
    ...(attackerAddress === undefined ? {} : { src_ip: attackerAddress, dst_ip: victim.address, dst_mac: victim.mac, lladdr: NOBODY_MAC }),
    prefix: "2001:db8:bad::",
    count: 20,
  };
}

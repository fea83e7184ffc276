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
  /** Rogue prefix, e.g. `2001:db8:bad::`. */
  prefix?: string;
  count?: number;
}

const script = fileURLToPath(new URL("./attacks/send_attack.py", import.meta.url));

/** Sends one attack from `iface` inside `netns` with scapy; resolves to the number of frames sent. */
export async function sendAttack(netns: string, iface: string, kind: AttackKind, params: AttackParams): Promise<number> {
  // Debian's python3 has scapy; the pyenv one on PATH does not.
  const { stdout } = await run("/usr/bin/python3", [script, iface, kind, JSON.stringify(params)], { netns, timeoutMs: 60_000 });
  return (JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as { sent: number }).sent;
}

/**
 * The parameters of one attack of `kind` by the guest with `attackerMac` against the victim:
 * frames carry the attacker's own MAC and link-local unless the attack spoofs, an NA spoof claims
 * the victim's address, rogue RAs announce 2001:db8:bad::/64; 20 frames.
 */
export function attackOn(kind: AttackKind, attackerMac: string, victim: { mac: string; address: string }): AttackParams {
  return {
    src_mac: attackerMac,
    src_ll: eui64LinkLocal(attackerMac as Mac),
    victim_mac: victim.mac,
    victim_ll: eui64LinkLocal(victim.mac as Mac),
    victim_ip: victim.address,
    ...(kind === "na-spoof" ? { target: victim.address } : {}),
    prefix: "2001:db8:bad::",
    count: 20,
  };
}

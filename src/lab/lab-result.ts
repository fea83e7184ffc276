import type { DropReason } from "../firewall/model.js";
/** One guest's row in the lab's result table. */
export interface LabGuestResult {
  name: string;
  role: "victim" | "attacker" | "duid-llt";
  mac: string;
  duidLL: string;
  linkLocal: string;
  device: string | undefined;
  expected: string;
  obtained: string[];
  /** False for a KVM attacker: its NIC runs the rogue dnsmasq, not a DHCPv6 client. */
  dhcpClient: boolean;
  /** Victims: the rogue RA left no route and no address; the rogue DHCPv6 server gave nothing. */
  attack?: {
    rogueRouteAbsent: boolean;
    rogueAddressAbsent: boolean;
    defaultRouteKept: boolean;
    addressKept: boolean;
    /** Every default router the guest had while the lab watched. */
    routersSeen: string[];
  };
  /** The port's drop counters (host.diagnose vifs[].drops). */
  drops: Partial<Record<DropReason, number>>;
  /** The DUID the agent saw the guest send (vif.report observedDuid), e.g. `DUID-LLT 00:01:…`. */
  observedDuid?: string;
  duidMatches?: boolean;
}

export interface LabResult {
  ok: boolean;
  hypervisor: "kvm" | "xenserver";
  guestKind: "vm" | "netns";
  backend: "nft" | "xtables";
  network: string;
  /** The bridge network.ensure made (in the host's namespace on KVM, in dom0's on XenServer). */
  bridge: string;
  router: string;
  roguePrefix: string;
  guests: LabGuestResult[];
  /** Every guest that runs a DHCPv6 client holds its reserved address. */
  addressesOk: boolean;
  /** No victim took the rogue route or address; the attacker's port dropped RAs and DHCPv6 replies. */
  attacksDropped: boolean;
  /** The agent reported every DHCP client's DUID: matching for those asking by DUID-LL, not for the DUID-LLT guest. */
  identitiesOk: boolean;
  seconds: number;
  kept: boolean;
}

export function guestOk(guest: LabGuestResult): boolean {
  // The DUID-LLT guest is the lab's counter-example: it must not get the address reserved for its DUID-LL.
  if (guest.role === "duid-llt") return !guest.obtained.includes(guest.expected);
  return !guest.dhcpClient || guest.obtained.includes(guest.expected);
}

/** Victims (and a XenServer attacker) send their DUID-LL; the DUID-LLT guest is reported as not matching. */
export function identityOk(guest: LabGuestResult): boolean {
  if (!guest.dhcpClient) return true;
  return guest.observedDuid !== undefined && guest.duidMatches === (guest.role !== "duid-llt");
}

export function attackerCountersOk(guest: LabGuestResult): boolean {
  return (guest.drops.ra ?? 0) > 0 && (guest.drops.dhcpv6Server ?? 0) > 0;
}

/** The human table: one row per guest, then a verdict line. */
export function formatLabResult(result: LabResult): string {
  const header = [
    "guest",
    "role",
    "MAC",
    "DUID-LL",
    "link-local",
    "expected",
    "obtained",
    "attack",
    "drops (RA/DHCPv6)",
    "DUID sent (seen by the agent)",
  ];
  const rows = result.guests.map((guest) => [
    guest.name,
    guest.role,
    guest.mac,
    guest.duidLL,
    guest.linkLocal,
    guest.expected,
    guest.dhcpClient ? guest.obtained.join(" ") || "-" : "(rogue router)",
    guest.role === "duid-llt"
      ? "-"
      : guest.attack === undefined
        ? attackerCountersOk(guest)
          ? "sent rogue RA+DHCPv6: dropped"
          : "NOT dropped"
        : guest.attack.rogueRouteAbsent && guest.attack.rogueAddressAbsent && guest.attack.defaultRouteKept && guest.attack.addressKept
          ? "unaffected"
          : `AFFECTED (${describe(guest.attack)})`,
    `${guest.drops.ra ?? 0}/${guest.drops.dhcpv6Server ?? 0}`,
    duidSent(guest),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] as string).length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] as number))
      .join("  ")
      .trimEnd();
  const verdict = [
    `network ${result.network} (router ${result.router}), ${result.hypervisor} ${result.guestKind} guests, ${result.backend} rules, ${result.seconds.toFixed(1)} s`,
    `addresses: ${result.addressesOk ? "every guest asking by DUID-LL holds its reserved address; the DUID-LLT guest got none" : "NOT every guest holds the address it should (or the DUID-LLT guest got one)"}`,
    `identity:  ${result.identitiesOk ? "the agent saw each guest's DUID: DUID-LL where asked for, the DUID-LLT guest reported as not matching" : "NOT every guest's DUID was reported as expected"}`,
    `attacks:   ${result.attacksDropped ? `rogue RA and rogue DHCPv6 (${result.roguePrefix}) dropped at the attacker's port` : "NOT every attack was dropped"}`,
    result.kept ? "the lab is still up (--keep): explore it, then run 'v6agent lab down'" : "the lab has been removed",
  ];
  return [line(header), ...rows.map(line), "", ...verdict].join("\n");
}

function duidSent(guest: LabGuestResult): string {
  if (!guest.dhcpClient) return "-";
  if (guest.observedDuid === undefined) return "NOT SEEN";
  return guest.duidMatches === true ? `${guest.observedDuid.split(" ")[0]} (matches)` : `${guest.observedDuid} (mismatch: no address)`;
}

function describe(attack: NonNullable<LabGuestResult["attack"]>): string {
  const problems: string[] = [];
  if (!attack.rogueRouteAbsent) problems.push("rogue route");
  if (!attack.rogueAddressAbsent) problems.push("rogue address");
  if (!attack.defaultRouteKept) problems.push("lost default route");
  if (!attack.addressKept) problems.push("lost address");
  return problems.join(", ");
}

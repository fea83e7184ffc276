import type { ObservedDuid } from "../protocol/index.js";

/** systemd's IANA enterprise number: systemd-networkd's default DUID-EN carries it. */
const SYSTEMD_ENTERPRISE = 43793;

/**
 * The `v6agent guest-config` call most likely to fix a guest that sends `duid`, guessed from
 * what each client sends by default (checked against the real clients on Debian 12): ISC
 * dhclient a DUID-LLT, systemd-networkd a DUID-EN under systemd's number, NetworkManager a
 * DUID-UUID. Anything else: the list of OSes.
 */
export function guestConfigHint(duid: Pick<ObservedDuid, "type" | "duid">): string {
  if (duid.type === 1) return "`v6agent guest-config --os dhclient` (ISC dhclient's default is DUID-LLT; also debian-ifupdown, centos6)";
  if (duid.type === 2 && enterpriseNumber(duid.duid) === SYSTEMD_ENTERPRISE) {
    return "`v6agent guest-config --os systemd-networkd` (its default is this DUID-EN; netplan guests: --os netplan)";
  }
  if (duid.type === 4) return "`v6agent guest-config --os networkmanager` (NetworkManager's default is DUID-UUID)";
  return "`v6agent guest-config --help` (for the guest's OS)";
}

function enterpriseNumber(hex: string): number | undefined {
  const bytes = hex.split(":");
  if (bytes.length < 6) return undefined;
  return Number.parseInt(bytes.slice(2, 6).join(""), 16);
}

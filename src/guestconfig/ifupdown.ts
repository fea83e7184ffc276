import { dhclientConfDuidLlFile, type GuestConfig, type GuestConfigRequest } from "./guest-config.js";

/**
 * Debian/Ubuntu ifupdown (the seed's Ubuntu 12.10 stanza). ifupdown's `inet6 dhcp` runs
 * `dhclient -6 -pf … -lf … -I -df … <nic>` with no `-cf`, and dhclient 4.4 (Debian 12) then reads
 * only /etc/dhcp/dhclient.conf — there is no separate dhclient6.conf default (seen under strace;
 * the binary holds no such path). So the DUID-LL statement goes there; dhclient -4 ignores a
 * dhcp6 option. ifupdown itself writes accept_ra and autoconf to sysctl from the stanza's options.
 */
export function renderIfupdown(request: GuestConfigRequest): GuestConfig {
  const { nic } = request;
  const nonDefault = request.role === "non-default";
  const stanza = [
    `allow-hotplug ${nic}`,
    `iface ${nic} inet6 dhcp`,
    "    autoconf 0",
    nonDefault ? "    # not the default NIC: no Router Advertisements, so no default route from here" : undefined,
    `    accept_ra ${nonDefault ? 0 : 1}`,
  ].filter((line): line is string => line !== undefined);
  return {
    os: "debian-ifupdown",
    title: "Debian/Ubuntu ifupdown: DHCPv6 at boot with a DUID-LL client identifier",
    files: [{ path: `/etc/network/interfaces.d/${nic}`, content: `${stanza.join("\n")}\n` }, dhclientConfDuidLlFile()],
    commands: [
      ["ifdown", nic],
      ["ifup", nic],
    ],
    notes: [
      "Keep the NIC's existing `inet` (IPv4) stanza; this adds the `inet6` one.",
      "/etc/network/interfaces must include /etc/network/interfaces.d (Debian's default: source /etc/network/interfaces.d/*).",
      "ifupdown's dhclient -6 reads /etc/dhcp/dhclient.conf (it has no -cf; no dhclient6.conf is read).",
    ],
  };
}

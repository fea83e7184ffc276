import { DHCLIENT_SEND_DUID_LL, type GuestConfig, type GuestConfigRequest } from "./guest-config.js";

/**
 * Debian/Ubuntu ifupdown (the seed's Ubuntu 12.10 stanza). ifupdown runs `dhclient -6` with its
 * default config file /etc/dhcp/dhclient6.conf, which carries the DUID-LL statement; ifupdown
 * itself writes accept_ra and autoconf to sysctl from the stanza's options.
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
    files: [
      { path: `/etc/network/interfaces.d/${nic}`, content: `${stanza.join("\n")}\n` },
      { path: "/etc/dhcp/dhclient6.conf", append: true, content: `${DHCLIENT_SEND_DUID_LL}\n` },
    ],
    commands: [
      ["ifdown", nic],
      ["ifup", nic],
    ],
    notes: [
      "Keep the NIC's existing `inet` (IPv4) stanza; this adds the `inet6` one.",
      "/etc/network/interfaces must include /etc/network/interfaces.d (Debian's default: source /etc/network/interfaces.d/*).",
    ],
  };
}

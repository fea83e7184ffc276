import { DHCLIENT_SEND_DUID_LL, type GuestConfig, type GuestConfigRequest } from "./guest-config.js";

/**
 * CentOS/RHEL 6 initscripts (the seed's CentOS 6.2 steps). Their dhclient is 4.1, so DUID-LL
 * comes from the `send dhcp6.client-id` statement in a per-device dhclient6 config that
 * DHCPV6C_OPTIONS hands to ifup-eth's `dhclient -6` explicitly (no reliance on a default path).
 * IPV6_AUTOCONF=no makes initscripts set accept_ra 0 on the NIC.
 */
export function renderRhel6(request: GuestConfigRequest): GuestConfig {
  const { nic, mac } = request;
  const nonDefault = request.role === "non-default";
  const ifcfg = [
    `DEVICE=${nic}`,
    ...(mac === undefined ? [] : [`HWADDR=${mac.toUpperCase()}`]),
    "ONBOOT=yes",
    "# shared networks are dual-stack: IPv4 from DHCP as before",
    "BOOTPROTO=dhcp",
    "IPV6INIT=yes",
    "DHCPV6C=yes",
    `DHCPV6C_OPTIONS="-cf /etc/dhcp/dhclient6-${nic}.conf"`,
    nonDefault ? "IPV6_AUTOCONF=no" : "IPV6_AUTOCONF=yes",
    ...(nonDefault ? ["# not the default NIC: IPV6_AUTOCONF=no sets accept_ra 0, so no default route comes in here"] : []),
  ];
  return {
    os: "centos6",
    title: "CentOS/RHEL 6 network-scripts: DHCPv6 at boot with a DUID-LL client identifier",
    files: [
      { path: `/etc/sysconfig/network-scripts/ifcfg-${nic}`, content: `${ifcfg.join("\n")}\n` },
      { path: "/etc/sysconfig/network", append: true, content: "NETWORKING_IPV6=yes\n" },
      { path: `/etc/dhcp/dhclient6-${nic}.conf`, content: `${DHCLIENT_SEND_DUID_LL}\n` },
    ],
    commands: [["service", "network", "restart"]],
    notes: [],
  };
}

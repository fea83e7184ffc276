import type { GuestConfig, GuestConfigRequest } from "./guest-config.js";

/**
 * netplan with its networkd renderer (Ubuntu server). netplan 0.106 cannot choose the DHCPv6 DUID
 * (`dhcp-identifier: mac` only affects DHCPv4), so a drop-in on the .network file netplan
 * generates (always named 10-netplan-<id>.network) sets DUIDType=link-layer. accept-ra: false
 * becomes IPv6AcceptRA=no; networkd then starts DHCPv6 only when told WithoutRA=solicit.
 */
export function renderNetplan(request: GuestConfigRequest): GuestConfig {
  const { nic } = request;
  const nonDefault = request.role === "non-default";
  const yaml = [
    "network:",
    "  version: 2",
    "  renderer: networkd",
    "  ethernets:",
    `    ${nic}:`,
    "      dhcp6: true",
    `      accept-ra: ${nonDefault ? "false" : "true"}`,
    "      ipv6-address-generation: eui64",
  ];
  const dropIn = [
    "[DHCPv6]",
    "# DUID-LL: 00:03, 00:01 (Ethernet), then the NIC's MAC",
    "DUIDType=link-layer",
    ...(nonDefault ? ["# no Router Advertisements on this NIC, so ask DHCPv6 without waiting for the M flag", "WithoutRA=solicit"] : []),
  ];
  return {
    os: "netplan",
    title: "netplan (networkd renderer): DHCPv6 with DUID-LL, EUI-64 link-local",
    files: [
      { path: `/etc/netplan/60-v6agent-${nic}.yaml`, mode: "0600", content: `${yaml.join("\n")}\n` },
      { path: `/etc/systemd/network/10-netplan-${nic}.network.d/60-v6agent-dhcpv6.conf`, content: `${dropIn.join("\n")}\n` },
    ],
    commands: [["netplan", "apply"]],
    notes: [
      nonDefault
        ? `${nic} is not the default NIC: accept-ra: false (IPv6AcceptRA=no), so no default route comes in here.`
        : `${nic} is the default NIC: it accepts Router Advertisements and takes the router's default route.`,
    ],
  };
}

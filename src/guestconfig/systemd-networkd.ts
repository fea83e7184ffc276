import type { GuestConfig, GuestConfigRequest } from "./guest-config.js";

/**
 * systemd-networkd .network file. DUIDType=link-layer in [DHCPv6] makes the DUID from the NIC's
 * MAC; IPv6AcceptRA=no is networkd's accept_ra 0, and WithoutRA=solicit then starts DHCPv6
 * without waiting for an RA's M flag.
 */
export function renderSystemdNetworkd(request: GuestConfigRequest): GuestConfig {
  const { nic, mac } = request;
  const nonDefault = request.role === "non-default";
  const unit = [
    "[Match]",
    `Name=${nic}`,
    ...(mac === undefined ? [] : [`MACAddress=${mac}`]),
    "",
    "[Network]",
    "DHCP=ipv6",
    "IPv6LinkLocalAddressGenerationMode=eui64",
    ...(nonDefault ? ["# not the default NIC: ignore Router Advertisements, so no default route from here"] : []),
    `IPv6AcceptRA=${nonDefault ? "no" : "yes"}`,
    "",
    "[DHCPv6]",
    "DUIDType=link-layer",
    ...(nonDefault ? ["WithoutRA=solicit"] : []),
  ];
  return {
    os: "systemd-networkd",
    title: "systemd-networkd: DHCPv6 with DUID-LL (DUIDType=link-layer), EUI-64 link-local",
    files: [{ path: `/etc/systemd/network/60-v6agent-${nic}.network`, content: `${unit.join("\n")}\n` }],
    commands: [["networkctl", "reload"]],
    notes: [],
  };
}

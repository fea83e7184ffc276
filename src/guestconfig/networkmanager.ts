import type { GuestConfig, GuestConfigRequest } from "./guest-config.js";

/**
 * NetworkManager keyfile. `method=auto` follows the RA's M flag into DHCPv6; on a non-default
 * NIC `method=dhcp` runs DHCPv6 without listening to Router Advertisements at all (NetworkManager's
 * accept_ra 0) and never-default keeps any default route off it. addr-gen-mode=eui64 because
 * NetworkManager's stable-privacy default would give a link-local the port policy does not allow.
 */
export function renderNetworkManager(request: GuestConfigRequest): GuestConfig {
  const { nic, mac } = request;
  const nonDefault = request.role === "non-default";
  const id = `v6agent-${nic}`;
  const keyfile = [
    "[connection]",
    `id=${id}`,
    "type=ethernet",
    `interface-name=${nic}`,
    "",
    "[ethernet]",
    ...(mac === undefined ? [] : [`mac-address=${mac.toUpperCase()}`]),
    "",
    "[ipv4]",
    "method=auto",
    "",
    "[ipv6]",
    "addr-gen-mode=eui64",
    "dhcp-duid=ll",
    nonDefault ? "method=dhcp" : "method=auto",
    ...(nonDefault ? ["never-default=true"] : []),
  ];
  return {
    os: "networkmanager",
    title: "NetworkManager keyfile: DHCPv6 with DUID-LL (ipv6.dhcp-duid=ll), EUI-64 link-local",
    files: [{ path: `/etc/NetworkManager/system-connections/${id}.nmconnection`, mode: "0600", content: `${keyfile.join("\n")}\n` }],
    commands: [
      ["nmcli", "connection", "reload"],
      ["nmcli", "connection", "up", id],
    ],
    notes: [
      nonDefault
        ? `${nic} is not the default NIC: DHCPv6 only (method=dhcp ignores Router Advertisements) and never-default=true.`
        : `${nic} is the default NIC: it follows Router Advertisements and takes the router's default route.`,
    ],
  };
}

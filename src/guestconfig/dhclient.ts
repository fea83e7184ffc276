import { acceptRaOffFile, dhclientConfDuidLlFile, type GuestConfig, type GuestConfigRequest, ipv6SysctlKey } from "./guest-config.js";

/** ISC dhclient 4.2 and later: the seed's `dhclient -6 -D LL <dev>`, nothing else needed. */
export function renderDhclient(request: GuestConfigRequest): GuestConfig {
  const { nic } = request;
  const nonDefault = request.role === "non-default";
  return {
    os: "dhclient",
    title: "ISC dhclient 4.2 or later: DHCPv6 with a DUID-LL client identifier (-D LL)",
    files: nonDefault ? [acceptRaOffFile(nic)] : [],
    commands: [...(nonDefault ? [["sysctl", "-w", `${ipv6SysctlKey(nic, "accept_ra")}=0`]] : []), ["dhclient", "-6", "-D", "LL", nic]],
    notes: [
      "Run dhclient again after every stop/start of the VM (the seed's procedure).",
      "-D LL only applies when the lease file holds no default-duid yet; delete a stale default-duid line from an earlier run.",
    ],
  };
}

/** ISC dhclient 4.1 (no -D): the seed's `send dhcp6.client-id` statement in dhclient's config. */
export function renderDhclient41(request: GuestConfigRequest): GuestConfig {
  const { nic } = request;
  const nonDefault = request.role === "non-default";
  return {
    os: "dhclient-4.1",
    title: "ISC dhclient 4.1: DUID-LL sent as the DHCPv6 client identifier from dhclient.conf",
    files: [dhclientConfDuidLlFile(), ...(nonDefault ? [acceptRaOffFile(nic)] : [])],
    commands: [
      ...(nonDefault ? [["sysctl", "-w", `${ipv6SysctlKey(nic, "accept_ra")}=0`]] : []),
      ["dhclient", "-6", "-cf", "/etc/dhcp/dhclient.conf", nic],
    ],
    notes: ["Run dhclient again after every stop/start of the VM (the seed's procedure)."],
  };
}

import { InvalidArgumentError } from "../errors.js";
import { renderDhclient, renderDhclient41 } from "./dhclient.js";
import type { GuestConfigRenderer } from "./guest-config.js";
import { renderIfupdown } from "./ifupdown.js";
import { renderNetplan } from "./netplan.js";
import { renderNetworkManager } from "./networkmanager.js";
import { renderRhel6 } from "./rhel6.js";
import { renderSystemdNetworkd } from "./systemd-networkd.js";

export interface GuestOs {
  id: string;
  aliases: readonly string[];
  summary: string;
  render: GuestConfigRenderer;
}

/** Every guest OS family `v6agent guest-config --os` knows, in the order help lists them. */
export const GUEST_OSES: readonly GuestOs[] = [
  { id: "dhclient", aliases: ["dhclient-4.2"], summary: "ISC dhclient 4.2+: dhclient -6 -D LL <nic>", render: renderDhclient },
  { id: "dhclient-4.1", aliases: [], summary: "ISC dhclient 4.1: send dhcp6.client-id in dhclient.conf", render: renderDhclient41 },
  { id: "centos6", aliases: ["rhel6"], summary: "CentOS/RHEL 6 ifcfg (IPV6INIT, DHCPV6C)", render: renderRhel6 },
  { id: "debian-ifupdown", aliases: ["ubuntu-ifupdown"], summary: "Debian/Ubuntu /etc/network/interfaces", render: renderIfupdown },
  { id: "netplan", aliases: [], summary: "netplan (networkd renderer) + DUID drop-in", render: renderNetplan },
  { id: "networkmanager", aliases: ["nm"], summary: "NetworkManager keyfile (ipv6.dhcp-duid=ll)", render: renderNetworkManager },
  {
    id: "systemd-networkd",
    aliases: ["networkd"],
    summary: "systemd-networkd .network (DUIDType=link-layer)",
    render: renderSystemdNetworkd,
  },
];

export function guestOsIds(): string[] {
  return GUEST_OSES.map((os) => os.id);
}

/** Finds an OS by id or alias; an unknown name is refused with the list of known ones. */
export function findGuestOs(input: unknown, field = "--os"): GuestOs {
  if (typeof input !== "string" || input === "") {
    throw new InvalidArgumentError(field, `choose a guest OS: ${guestOsIds().join(", ")}`);
  }
  const name = input.toLowerCase();
  const os = GUEST_OSES.find((candidate) => candidate.id === name || candidate.aliases.includes(name));
  if (os === undefined) {
    throw new InvalidArgumentError(field, `unknown guest OS ${JSON.stringify(input)}; known: ${guestOsIds().join(", ")}`);
  }
  return os;
}

import { duidLl } from "./duid.js";
import type { Mac } from "./mac.js";
import { parseIpv6Address } from "./network.js";

/**
 * The dnsmasq reservation that hands `address` to the guest whose DHCPv6 client identifies
 * itself by the DUID-LL of `mac` (dnsmasq matches `id:` against the client DUID).
 */
export function dhcpHostLine(mac: Mac, address: string): string {
  return `dhcp-host=id:${duidLl(mac)},[${parseIpv6Address(address)}]`;
}

import { dhcpHostLine, duidLl, eui64Global, eui64LinkLocal, parseIpv6Network, parseMac } from "../addressing/index.js";

export interface AddrReport {
  mac: string;
  duidLL: string;
  linkLocal: string;
  /** Present with a prefix: the EUI-64 address inside the /64 and its dnsmasq reservation. */
  network?: string;
  global?: string;
  dhcpHost?: string;
}

/** What `v6agent addr` computes: every address fact the DHCPv6 server needs for one MAC. */
export function addrReport(macInput: string, prefixInput?: string): AddrReport {
  const mac = parseMac(macInput, "mac");
  const report: AddrReport = { mac, duidLL: duidLl(mac), linkLocal: eui64LinkLocal(mac) };
  if (prefixInput !== undefined) {
    const network = parseIpv6Network(prefixInput, "--prefix");
    const global = eui64Global(mac, network);
    report.network = network.cidr;
    report.global = global;
    report.dhcpHost = dhcpHostLine(mac, global);
  }
  return report;
}

export function formatAddrReport(report: AddrReport): string {
  const rows: [string, string | undefined][] = [
    ["MAC", report.mac],
    ["DUID-LL", report.duidLL],
    ["link-local", report.linkLocal],
    ["network", report.network],
    ["global", report.global],
    ["dnsmasq", report.dhcpHost],
  ];
  return rows
    .filter((row): row is [string, string] => row[1] !== undefined)
    .map(([label, value]) => `${label.padEnd(11)} ${value}`)
    .join("\n");
}

import type { InterfaceName, Mac } from "../addressing/index.js";

/**
 * What the operator asks for: one guest NIC, optionally its MAC, and whether it is the VM's
 * default NIC. Per the seed, only the default NIC may accept Router Advertisements, so only it
 * takes the router's default route; every other NIC gets accept_ra 0.
 */
export interface GuestConfigRequest {
  nic: InterfaceName;
  mac?: Mac;
  role: NicRole;
}

export type NicRole = "default" | "non-default";

/** One file to create on the guest. */
export interface GuestFile {
  path: string;
  content: string;
  /** Octal permissions when the tool insists on them (NetworkManager, netplan). */
  mode?: string;
  /** Whether to append to an existing file rather than replace it (sysctl.conf, dhclient.conf). */
  append?: boolean;
}

/** The configuration one renderer produces: files, then commands to run on the guest. */
export interface GuestConfig {
  os: string;
  title: string;
  files: GuestFile[];
  /** Argument arrays; every element is a validated interface name or a fixed word. */
  commands: string[][];
  /** One-line remarks for the operator (shown as comments). */
  notes: string[];
}

export type GuestConfigRenderer = (request: GuestConfigRequest) => GuestConfig;

/**
 * The sysctl key of a per-interface IPv6 setting. sysctl separates levels with dots, so a dot in
 * the interface name (VLAN `eth0.100`) must be written as a slash.
 */
export function ipv6SysctlKey(nic: InterfaceName, setting: string): string {
  return `net.ipv6.conf.${nic.replaceAll(".", "/")}.${setting}`;
}

/** A sysctl.d file that turns accept_ra off on a non-default NIC (the seed's advice). */
export function acceptRaOffFile(nic: InterfaceName): GuestFile {
  return {
    path: `/etc/sysctl.d/60-v6agent-${nic}.conf`,
    content: `# ${nic} is not the default NIC: ignore Router Advertisements so it never takes a default route\n${ipv6SysctlKey(nic, "accept_ra")} = 0\n`,
  };
}

/**
 * The dhclient statement that sends DUID-LL whatever DUID dhclient stored before: `hardware`
 * evaluates to the hardware type (1, Ethernet) followed by the NIC's MAC, so this yields
 * 00:03:00:01:<mac>. Works on dhclient 4.1, where `-D LL` does not exist yet.
 */
export const DHCLIENT_SEND_DUID_LL = "send dhcp6.client-id = concat(00:03:00, hardware);";

/** dhclient.conf gets the DUID-LL statement appended (ISC dhclient reads no other file by default). */
export function dhclientConfDuidLlFile(): GuestFile {
  return {
    path: "/etc/dhcp/dhclient.conf",
    append: true,
    content: `# DHCPv6 client identifier = DUID-LL (00:03 type, 00:01 Ethernet, then the NIC's MAC)\n${DHCLIENT_SEND_DUID_LL}\n`,
  };
}

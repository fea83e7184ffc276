import { findInPath } from "../diag/tools.js";
import { V6Error } from "../errors.js";

/** A program the lab runs, and the Debian package that provides it. */
export interface LabTool {
  command: string;
  debianPackage: string;
}

export const COMMON_TOOLS: readonly LabTool[] = [
  { command: "ip", debianPackage: "iproute2" },
  { command: "sysctl", debianPackage: "procps" },
  { command: "dnsmasq", debianPackage: "dnsmasq-base" },
  { command: "dhclient", debianPackage: "isc-dhcp-client" },
];

export const BACKEND_TOOLS: Readonly<Record<"nft" | "xtables", readonly LabTool[]>> = {
  nft: [{ command: "nft", debianPackage: "nftables" }],
  xtables: [
    { command: "ebtables", debianPackage: "ebtables" },
    { command: "ebtables-restore", debianPackage: "ebtables" },
    { command: "ip6tables-restore", debianPackage: "iptables" },
  ],
};

export const VM_TOOLS: readonly LabTool[] = [
  { command: "libvirtd", debianPackage: "libvirt-daemon-system" },
  { command: "virtlogd", debianPackage: "libvirt-daemon-system" },
  { command: "qemu-system-x86_64", debianPackage: "qemu-system-x86" },
  { command: "busybox", debianPackage: "busybox-static" },
  { command: "cpio", debianPackage: "cpio" },
];

/** The tools in `tools` that are not installed. */
export function missingTools(tools: readonly LabTool[]): LabTool[] {
  return tools.filter((tool) => findInPath(tool.command) === undefined);
}

/**
 * Refuses to start unless the lab can finish: root, and every needed tool, naming the
 * packages that provide the missing ones in one apt-get line.
 */
export function assertLabCanRun(tools: readonly LabTool[], isRoot: boolean = process.getuid?.() === 0): void {
  if (!isRoot) {
    throw new V6Error("invalid_argument", "the lab builds network namespaces, bridges and firewall rules: run it as root");
  }
  const missing = missingTools(tools);
  if (missing.length > 0) {
    const packages = [...new Set(missing.map((tool) => tool.debianPackage))];
    throw new V6Error(
      "invalid_argument",
      `the lab needs ${missing.map((tool) => tool.command).join(", ")}, which ${missing.length === 1 ? "is" : "are"} not installed: apt-get install ${packages.join(" ")} (or run scripts/setup-host.sh)`,
    );
  }
}

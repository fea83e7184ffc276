import { run } from "../exec.js";
import type { HostnetOptions } from "./ip-link.js";

/**
 * The IPv6 sysctls of an interface the host must never configure itself from: a shared
 * network's bridge, its VLAN sub-interface and every guest port. A guest's RA would otherwise
 * give the hypervisor an address and a default route on the guests' network. IPv6 off on the
 * device (bridging of IPv6 frames is unaffected) with accept_ra and autoconf off as well, so the
 * host stays unconfigured even if something turns IPv6 back on.
 */
export const PORT_IPV6_SYSCTLS = { accept_ra: "0", autoconf: "0", disable_ipv6: "1" } as const;

export async function disableHostIpv6(device: string | readonly string[], options: HostnetOptions = {}): Promise<void> {
  const devices = typeof device === "string" ? [device] : device;
  if (devices.length === 0) return;
  // The slash form keeps dots in interface names (eth0.100) apart from the key's separators.
  // One sysctl for every device: at start the agent prepares every port at once, and a process
  // per port (through `ip netns exec`) cost tens of seconds at 1,000 ports.
  const assignments = devices.flatMap((name) =>
    Object.entries(PORT_IPV6_SYSCTLS).map(([key, value]) => `net/ipv6/conf/${name}/${key}=${value}`),
  );
  await run("sysctl", ["-q", "-w", ...assignments], { netns: options.netns });
}

export async function readIpv6Sysctl(device: string, key: keyof typeof PORT_IPV6_SYSCTLS, options: HostnetOptions = {}): Promise<string> {
  const { stdout } = await run("sysctl", ["-n", `net/ipv6/conf/${device}/${key}`], { netns: options.netns });
  return stdout.trim();
}

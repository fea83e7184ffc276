import { run } from "../exec.js";
import { PORT_IPV6_SYSCTLS } from "../hostnet/index.js";
import { type CheckResult, fail, ok, warn } from "./check.js";

/** `emulated port`: an HVM guest's QEMU NIC (`tap<domid>.<n>`), present only until its PV drivers load. */
export type DeviceRole = "bridge" | "uplink" | "port" | "emulated port";

/** The slash form keeps dots in interface names (eth0.100) apart from the key's separators. */
function sysctlKey(device: string, key: string): string {
  return `net/ipv6/conf/${device}/${key}`;
}

async function readSysctl(key: string, netns: string | undefined): Promise<string | undefined> {
  try {
    const { stdout } = await run("sysctl", ["-n", key], { timeoutMs: 5000, netns });
    return stdout.trim();
  } catch {
    return undefined;
  }
}

/** The command an operator pastes, inside the namespace when the host side lives in one. */
export function inNamespace(command: string, netns: string | undefined): string {
  return netns === undefined ? command : `ip netns exec ${netns} ${command}`;
}

/**
 * The host must never configure itself from an RA seen on a guest bridge, its uplink or a guest
 * port. The agent sets accept_ra=0, autoconf=0 and disable_ipv6=1 on each (src/hostnet/sysctl.ts):
 * accept_ra or autoconf left on is a failure even while IPv6 is off, because whatever turns IPv6
 * back on (an ifup script, a reload) would then let a guest's RA configure the host; IPv6 merely
 * left on with RAs refused is a warning.
 */
export async function sysctlChecks(devices: readonly { device: string; role: DeviceRole }[], netns?: string): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const { device, role } of devices) {
    const name = `sysctl.${device}`;
    const disabled = await readSysctl(sysctlKey(device, "disable_ipv6"), netns);
    if (disabled === undefined && role === "emulated port") {
      results.push(ok(name, `${role} ${device} is not present (QEMU's NIC goes once the guest's PV drivers load)`));
      continue;
    }
    if (disabled === undefined) {
      results.push(fail(name, `${role} ${device} does not exist`, "restart the agent: its reconcile recreates managed bridges"));
      continue;
    }
    const acceptRa = await readSysctl(sysctlKey(device, "accept_ra"), netns);
    const autoconf = await readSysctl(sysctlKey(device, "autoconf"), netns);
    const wrong = (
      [
        ["accept_ra", acceptRa],
        ["autoconf", autoconf],
      ] as const
    ).filter(([key, value]) => value !== PORT_IPV6_SYSCTLS[key]);
    if (wrong.length > 0) {
      const state = wrong.map(([key, value]) => `${key}=${value}`).join(", ");
      const when = disabled === "1" ? "as soon as IPv6 is re-enabled on it" : "now";
      results.push(
        fail(
          name,
          `${role} ${device} accepts router advertisements (${state}): a guest's RA could configure the host ${when}`,
          inNamespace(`sysctl -w ${wrong.map(([key]) => `${sysctlKey(device, key)}=0`).join(" ")}`, netns),
        ),
      );
    } else if (disabled !== PORT_IPV6_SYSCTLS.disable_ipv6) {
      results.push(
        warn(
          name,
          `${role} ${device}: RAs refused but host IPv6 is on (it has a link-local address on the guests' network)`,
          inNamespace(`sysctl -w ${sysctlKey(device, "disable_ipv6")}=1`, netns),
        ),
      );
    } else {
      results.push(ok(name, `${role} ${device}: IPv6 off for the host, accept_ra=0, autoconf=0`));
    }
  }
  return results;
}

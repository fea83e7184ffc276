import { run } from "../exec.js";
import { type CheckResult, fail, ok } from "./check.js";

async function readSysctl(key: string, netns: string | undefined): Promise<string | undefined> {
  try {
    const { stdout } = await run("sysctl", ["-n", key], { timeoutMs: 5000, ...(netns === undefined ? {} : { netns }) });
    return stdout.trim();
  } catch {
    return undefined;
  }
}

/**
 * The host must never configure itself from an RA seen on a guest bridge or port: either IPv6
 * is disabled on the device, or accept_ra and autoconf are both 0.
 */
export async function sysctlChecks(
  devices: readonly { device: string; role: "bridge" | "port" }[],
  netns?: string,
): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const { device, role } of devices) {
    const base = `net.ipv6.conf.${device}`;
    const disabled = await readSysctl(`${base}.disable_ipv6`, netns);
    const name = `sysctl.${device}`;
    if (disabled === undefined) {
      results.push(
        fail(
          name,
          `${role} ${device} does not exist`,
          `recreate it: the agent's next reconcile does (or run 'v6agent diag' after the agent started)`,
        ),
      );
      continue;
    }
    if (disabled === "1") {
      results.push(ok(name, `${role} ${device}: IPv6 disabled on the host side`));
      continue;
    }
    const acceptRa = await readSysctl(`${base}.accept_ra`, netns);
    const autoconf = await readSysctl(`${base}.autoconf`, netns);
    if (acceptRa !== "0" || autoconf !== "0") {
      results.push(
        fail(
          name,
          `${role} ${device} accepts router advertisements (accept_ra=${acceptRa}, autoconf=${autoconf}): the host could configure itself from a guest's RA`,
          `sysctl -w ${base}.accept_ra=0 ${base}.autoconf=0`,
        ),
      );
    } else {
      results.push(ok(name, `${role} ${device}: accept_ra=0, autoconf=0`));
    }
  }
  return results;
}

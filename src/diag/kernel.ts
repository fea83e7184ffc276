import { existsSync, readFileSync } from "node:fs";
import { run } from "../exec.js";
import { uniqueName } from "../lab/names.js";
import { deleteNamespace } from "../lab/netns.js";
import { type CheckResult, fail, ok, warn } from "./check.js";

/**
 * Kernel features, proven by using them in a throwaway namespace rather than by reading module
 * lists: a bridge can be created, and an nftables table of the bridge family can be loaded.
 */
export async function kernelChecks(options: { needBrNetfilter: boolean }): Promise<CheckResult[]> {
  const namespace = uniqueName("v6diag");
  const results: CheckResult[] = [];
  try {
    await run("ip", ["netns", "add", namespace]);
    results.push(
      await probe(
        "kernel.bridge",
        namespace,
        "ip",
        ["link", "add", "v6diagbr", "type", "bridge"],
        "Linux bridges work",
        "enable CONFIG_BRIDGE (load the bridge module)",
      ),
    );
    results.push(
      await probe(
        "kernel.nftables-bridge",
        namespace,
        "nft",
        ["add", "table", "bridge", "v6diag"],
        "nftables bridge family works",
        "install nftables and enable CONFIG_NF_TABLES_BRIDGE, or set firewall.backend: xtables",
        "warn",
      ),
    );
  } catch (error) {
    results.push(
      fail(
        "kernel.netns",
        `cannot create a network namespace: ${(error as Error).message}`,
        "run as root on a kernel with network namespaces",
      ),
    );
  } finally {
    await deleteNamespace(namespace);
  }
  const brNetfilter = existsSync("/proc/sys/net/bridge/bridge-nf-call-ip6tables");
  if (brNetfilter) results.push(ok("kernel.br_netfilter", "br_netfilter is available (ip6tables sees bridged IPv6)"));
  else if (options.needBrNetfilter) {
    results.push(
      fail(
        "kernel.br_netfilter",
        "br_netfilter is missing: ip6tables rules cannot see bridged traffic",
        "modprobe br_netfilter (and add it to /etc/modules-load.d)",
      ),
    );
  } else
    results.push(
      warn(
        "kernel.br_netfilter",
        "br_netfilter is missing (only the xtables backend needs it)",
        "modprobe br_netfilter if you use firewall.backend: xtables",
      ),
    );
  results.push(rcuExpeditedCheck());
  return results;
}

/**
 * Information, never a warning: the kernel's RCU grace-period mode sets the floor of a firewall
 * change. With `rcu_expedited` 0 (every distribution's default) a netfilter transaction that
 * frees rules, and a netlink socket closed after one, waits a normal grace period (milliseconds
 * on a preemptible kernel); 1 expedites them at a cost to the whole machine. v6agent only reports it.
 */
export function rcuExpeditedCheck(path = "/sys/kernel/rcu_expedited"): CheckResult {
  let value: string;
  try {
    value = readFileSync(path, "utf8").trim();
  } catch {
    return ok("kernel.rcu_expedited", `${path} is not readable on this kernel (nothing to report)`);
  }
  const meaning =
    value === "0"
      ? "normal RCU grace periods (the default): each firewall transaction may wait one, a few ms; see docs/operators.md"
      : "expedited RCU grace periods: firewall transactions wait less, at a cost to the whole machine; set by someone other than v6agent";
  return ok("kernel.rcu_expedited", `rcu_expedited is ${value}: ${meaning}`);
}

async function probe(
  name: string,
  namespace: string,
  command: string,
  args: string[],
  success: string,
  fix: string,
  severity: "warn" | "fail" = "fail",
): Promise<CheckResult> {
  try {
    await run(command, args, { netns: namespace, timeoutMs: 10_000 });
    return ok(name, success);
  } catch (error) {
    const message = `${command} ${args.join(" ")} failed: ${(error as Error).message.split("\n")[0]}`;
    return severity === "warn" ? warn(name, message, fix) : fail(name, message, fix);
  }
}

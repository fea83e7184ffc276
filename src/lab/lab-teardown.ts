import { rmSync } from "node:fs";
import { findInPath } from "../diag/tools.js";
import { run } from "../exec.js";
import { createFirewall } from "../firewall/index.js";
import { stopPid } from "./lab-processes.js";
import { LAB_DIR, LAB_PREFIX, readLabRecord } from "./lab-state.js";
import { deleteNamespace } from "./netns.js";

/** What `lab down` removed, for its report. */
export interface TeardownSummary {
  processes: number;
  domains: string[];
  links: string[];
  namespaces: string[];
  firewall: string[];
  problems: string[];
}

/**
 * Removes every trace of a lab: what its record lists and, in case the record is missing or
 * stale (a lab killed mid-step), everything named with the `v6lab` prefix. Each step carries on
 * after a failure and reports it, so one stuck object never keeps the others in place.
 */
export async function labDown(dir = LAB_DIR): Promise<TeardownSummary> {
  const record = readLabRecord(dir);
  const summary: TeardownSummary = { processes: 0, domains: [], links: [], namespaces: [], firewall: [], problems: [] };
  const attempt = async (what: string, step: () => Promise<void>) => {
    try {
      await step();
    } catch (error) {
      summary.problems.push(`${what}: ${(error as Error).message}`);
    }
  };

  // All at once: each gets SIGTERM and a grace period, and the waits overlap.
  await Promise.all(
    (record?.pids ?? []).map((entry) =>
      attempt(`stop ${entry.name} (pid ${entry.pid})`, async () => {
        await stopPid(entry.pid);
        summary.processes++;
      }),
    ),
  );

  if (findInPath("virsh") !== undefined) {
    const domains = new Set(record?.domains ?? []);
    await attempt("list libvirt domains", async () => {
      const { stdout } = await run("virsh", ["-c", "qemu:///system", "list", "--all", "--name"], { timeoutMs: 20_000 });
      for (const name of stdout.split("\n").map((line) => line.trim())) if (name.startsWith(LAB_PREFIX)) domains.add(name);
    });
    for (const name of domains) {
      await attempt(`remove domain ${name}`, async () => {
        await run("virsh", ["-c", "qemu:///system", "destroy", name], { okExitCodes: [0, 1] });
        await run("virsh", ["-c", "qemu:///system", "undefine", name], { okExitCodes: [0, 1] });
        summary.domains.push(name);
      });
    }
  }

  // Processes inside the lab's namespaces (dnsmasq, dhclient) go before their namespaces.
  const namespaces = new Set(record?.namespaces ?? []);
  await attempt("list namespaces", async () => {
    const { stdout } = await run("ip", ["netns", "list"]);
    for (const line of stdout.split("\n")) {
      const name = line.trim().split(/\s+/)[0] ?? "";
      if (name.startsWith(LAB_PREFIX)) namespaces.add(name);
    }
  });
  await Promise.all(
    [...namespaces].map((name) =>
      attempt(`stop processes in ${name}`, async () => {
        const { stdout } = await run("ip", ["netns", "pids", name], { okExitCodes: [0, 1] });
        const pids = stdout
          .split("\n")
          .map(Number)
          .filter((value) => Number.isInteger(value) && value > 1);
        await Promise.all(pids.map((pid) => stopPid(pid, 3000)));
        summary.processes += pids.length;
      }),
    ),
  );

  // Rules in the host's namespace (KVM labs); a namespace's own rules go with the namespace.
  const firewall = record?.firewall;
  if (firewall !== undefined && firewall.netns === undefined) {
    await attempt(`remove ${firewall.backend} rules`, async () => {
      const rules = await createFirewall({ backend: firewall.backend });
      for (const bridge of firewall.bridges ?? []) {
        await rules.removeBridge(bridge);
        summary.firewall.push(bridge);
      }
      const live = await rules.readLive();
      // The table is the lab agent's alone unless another agent manages bridges here too.
      if (live.bridges.length === 0 && live.ports.length === 0) {
        await rules.removeAll();
        summary.firewall.push(firewall.backend === "nft" ? "table bridge v6agent" : "v6agent chains");
      }
    });
  }

  const links = new Set(record?.hostLinks ?? []);
  await attempt("list links", async () => {
    const { stdout } = await run("ip", ["-json", "link", "show"]);
    const all = JSON.parse(stdout) as { ifname: string; master?: string }[];
    for (const link of all) {
      if (!link.ifname.startsWith(LAB_PREFIX)) continue;
      links.add(link.ifname);
      // The agent names the lab's bridge after the network; the lab's uplink hangs off it.
      if (link.master !== undefined) links.add(link.master);
    }
  });
  for (const name of links) {
    await attempt(`delete link ${name}`, async () => {
      const { exitCode } = await run("ip", ["link", "del", name], { okExitCodes: [0, 1] });
      if (exitCode === 0) summary.links.push(name);
    });
  }

  for (const name of namespaces) {
    await attempt(`delete namespace ${name}`, async () => {
      await deleteNamespace(name);
      summary.namespaces.push(name);
    });
  }
  rmSync(dir, { recursive: true, force: true });
  return summary;
}

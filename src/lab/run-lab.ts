import { existsSync, mkdirSync } from "node:fs";
import { V6Error } from "../errors.js";
import { runKvmLab } from "./kvm-lab.js";
import type { LabOptions } from "./lab-options.js";
import type { LabResult } from "./lab-result.js";
import { HOST_ID, type LabProgress, LabSession } from "./lab-session.js";
import { LAB_DIR, labRecordPath } from "./lab-state.js";
import { labDown } from "./lab-teardown.js";
import { runXenLab } from "./xen-lab.js";

export { LAB_NETWORK, LAB_ROUTER, type LabProgress, labGuests, ROGUE_NETWORK } from "./lab-session.js";

/**
 * `v6agent lab`: the seed's sequence on this one machine with real processes over the real
 * channel — a management server and an agent daemon as child processes, a /64 made by
 * `network.ensure`, guests, a router namespace whose dnsmasq holds reservations built from the
 * agent's `vif.report`s, `dhclient -6 -D LL` in every guest, then a rogue RA and a rogue DHCPv6
 * server from the last guest, which the agent's rules drop at that guest's own port.
 */
export async function runLab(options: LabOptions, progress: LabProgress = () => {}): Promise<LabResult> {
  const dir = options.dir ?? LAB_DIR;
  // Even an unreadable record means a lab (or a half-removed one) is there.
  if (existsSync(labRecordPath(dir))) {
    throw new V6Error("conflict", `a lab is already up (${dir}/lab.json): run 'v6agent lab down' first`);
  }
  const started = Date.now();
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const session = new LabSession(dir, progress);
  session.record.firewall = { backend: options.backend, ...(options.hypervisor === "xenserver" ? { netns: HOST_ID } : {}) };
  session.save();
  let done = false;
  const interrupt = () => {
    if (!done) progress({ step: "interrupted: removing the lab", status: "fail" });
    void labDown(dir).finally(() => process.exit(130));
  };
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);
  try {
    const result =
      options.hypervisor === "xenserver" ? await runXenLab(session, options, started) : await runKvmLab(session, options, started);
    done = true;
    if (options.keep) {
      for (const daemon of session.daemons) daemon.unref();
      for (const router of session.routers) router.unref();
      for (const netns of session.namespaces) netns.release();
    } else {
      // Not a session step: the record it would save afterwards is what lab down just removed.
      progress({ step: "lab down", status: "start" });
      const summary = await labDown(dir);
      progress({
        step: "lab down",
        status: summary.problems.length === 0 ? "done" : "fail",
        detail: summary.problems.join("; ") || undefined,
      });
    }
    return result;
  } catch (error) {
    done = true;
    progress({ step: "removing the failed lab", status: "start" });
    await labDown(dir);
    progress({ step: "removing the failed lab", status: "done" });
    throw error;
  } finally {
    process.removeListener("SIGINT", interrupt);
    process.removeListener("SIGTERM", interrupt);
  }
}

import type { Hypervisor, VmInfo } from "../hypervisor/hypervisor.js";
import { type CheckResult, fail, ok } from "./check.js";
import { withTimeout } from "./timeout.js";

const CONNECT_TIMEOUT_MS = 15_000;

export interface HypervisorProbe {
  backend: Hypervisor;
  /** What the operator configured, for messages: `libvirt qemu:///system`, `XAPI root@https://…`. */
  target: string;
  /** The one-line fix when it cannot be reached. */
  fix: string;
  /** Connect first (and close after): `v6agent diag`; the daemon's is connected already. */
  connect: boolean;
}

/**
 * Hypervisor connectivity as its own check: a libvirt connection or an XAPI login, then the
 * host's facts and VM list. Returns the VMs for the desired-versus-live checks (none on failure).
 */
export async function hypervisorCheck(probe: HypervisorProbe): Promise<{ check: CheckResult; vms: VmInfo[]; close: () => Promise<void> }> {
  // Closed even after a failed or timed-out connect, so a late success leaves nothing open.
  const close = async () => {
    if (probe.connect) await probe.backend.close().catch(() => undefined);
  };
  try {
    if (probe.connect) await withTimeout(probe.backend.connect(), `connecting to ${probe.target}`, CONNECT_TIMEOUT_MS);
    const facts = await probe.backend.facts();
    const vms = await probe.backend.listVms();
    const running = vms.filter((vm) => vm.state === "running").length;
    return {
      check: ok(
        "hypervisor",
        `${probe.target}: ${facts.kind} ${facts.hypervisorVersion} on ${facts.hostname}, ${vms.length} VM(s), ${running} running`,
      ),
      vms,
      close,
    };
  } catch (error) {
    return {
      check: fail("hypervisor", `cannot use ${probe.target}: ${(error as Error).message.split("\n")[0]}`, probe.fix),
      vms: [],
      close,
    };
  }
}

import type { FirewallState } from "../firewall/model.js";
import type { VmInfo } from "../hypervisor/hypervisor.js";
import type { DesiredState } from "./desired-state.js";
import { type ObservedPort, observedPorts, planFirewall } from "./plan.js";
import { allVifReports, type IdentityLookup, type VifReport } from "./vif-report.js";

/** What the agent would make of this host now: for `v6agent diag`, which compares it with what is live. */
export interface HostView {
  plan: FirewallState;
  ports: ObservedPort[];
  vifs: VifReport[];
}

/** The firewall plan, guest ports and VIF reports for `desired` on the VMs a hypervisor shows (nothing pending). */
export function hostView(
  desired: DesiredState,
  vms: readonly VmInfo[],
  guestPortPatterns: readonly string[],
  identity?: IdentityLookup,
): HostView {
  const ports = observedPorts(desired, vms);
  return { plan: planFirewall(desired, ports, [], guestPortPatterns), ports, vifs: allVifReports(desired, ports, identity) };
}

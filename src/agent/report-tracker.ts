import type { Mac } from "../addressing/index.js";
import { type DesiredState, findNic } from "./desired-state.js";
import { sameReport, type VifReport, vifReport } from "./vif-report.js";

/** Remembers the last report sent per MAC, so only changes go out. */
export class ReportTracker {
  private readonly last = new Map<string, VifReport>();

  /**
   * The reports to send: every report in `current` that differs from the last one sent, and
   * `unplugged` for VIFs that vanished. `scope` says what `current` covers: the whole host, or
   * one VM after a change that touched only it (a command or an event), in which case another
   * VM's VIFs, and a MAC that moved to another VM, are left to that VM's reports.
   */
  changes(
    current: readonly VifReport[],
    scope: { vmUuid?: string; desired: DesiredState; observedMacs: ReadonlySet<string> | ReadonlyMap<string, unknown> },
  ): VifReport[] {
    const sent: VifReport[] = [];
    const macs = new Set<string>();
    for (const report of current) {
      macs.add(report.mac);
      const last = this.last.get(report.mac);
      if (last !== undefined && sameReport(last, report)) continue;
      this.last.set(report.mac, report);
      sent.push(report);
    }
    for (const [mac, last] of this.last) {
      if (macs.has(mac)) continue;
      if (scope.vmUuid !== undefined) {
        if (last.vmUuid !== scope.vmUuid || scope.observedMacs.has(mac) || findNic(scope.desired, mac) !== undefined) continue;
      }
      this.last.delete(mac);
      sent.push(vifReport({ vmUuid: last.vmUuid, mac: last.mac as Mac, state: "unplugged", networkId: last.networkId }));
    }
    return sent;
  }

  /** The last report of every VIF, for heartbeats. */
  lastReports(): VifReport[] {
    return [...this.last.values()];
  }
}

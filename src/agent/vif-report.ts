import { duidLl, eui64LinkLocal, type Mac } from "../addressing/index.js";
import type { DesiredState } from "./desired-state.js";
import type { ObservedPort } from "./plan.js";

/**
 * `protected`: the NIC's device exists and its rules are in place; `detached`: the server wants
 * the NIC but it has no device now (VM stopped, not yet plugged); `unplugged`: the NIC was
 * removed (sent once, after nic.unplug or vm destroy).
 */
export type VifState = "protected" | "detached" | "unplugged";

/** What the DHCPv6 server's configuration is built from (design section 1, step 2). */
export interface VifReport {
  vmUuid: string;
  networkId?: string;
  mac: string;
  duidLL: string;
  linkLocal: string;
  device?: string;
  bridge?: string;
  state: VifState;
}

export function vifReport(fields: {
  vmUuid: string;
  mac: Mac;
  state: VifState;
  networkId?: string;
  device?: string;
  bridge?: string;
}): VifReport {
  const report: VifReport = {
    vmUuid: fields.vmUuid,
    mac: fields.mac,
    duidLL: duidLl(fields.mac),
    linkLocal: eui64LinkLocal(fields.mac),
    state: fields.state,
  };
  if (fields.networkId !== undefined) report.networkId = fields.networkId;
  if (fields.device !== undefined) report.device = fields.device;
  if (fields.bridge !== undefined) report.bridge = fields.bridge;
  return report;
}

/**
 * Reports for every desired NIC and every observed port: the full inventory sent after each
 * (re)connect, and the source of change reports (compare with `sameReport`).
 */
export function allVifReports(desired: DesiredState, observed: readonly ObservedPort[]): VifReport[] {
  const byMac = new Map(observed.map((port) => [port.mac as string, port]));
  const reports: VifReport[] = [];
  const seen = new Set<string>();
  for (const vm of desired.vms) {
    for (const nic of vm.nics) {
      const port = byMac.get(nic.mac);
      const bridge = port?.bridge ?? desired.networks.find((n) => n.networkId === nic.networkId)?.bridge;
      seen.add(nic.mac);
      reports.push(
        vifReport({
          vmUuid: vm.uuid,
          mac: nic.mac,
          networkId: nic.networkId,
          state: port === undefined ? "detached" : "protected",
          ...(port === undefined ? {} : { device: port.device }),
          ...(bridge === undefined ? {} : { bridge }),
        }),
      );
    }
  }
  for (const port of observed) {
    if (seen.has(port.mac)) continue;
    const network = desired.networks.find((n) => n.bridge === port.bridge);
    reports.push(
      vifReport({
        vmUuid: port.vmUuid,
        mac: port.mac,
        state: "protected",
        device: port.device,
        bridge: port.bridge,
        ...(network === undefined ? {} : { networkId: network.networkId }),
      }),
    );
  }
  return reports;
}

export function sameReport(a: VifReport, b: VifReport): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

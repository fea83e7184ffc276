import { duidLl, eui64LinkLocal, type Mac } from "../addressing/index.js";
import type { ObservedDuid, VifReport } from "../protocol/index.js";
import { type DesiredNic, type DesiredState, findNic } from "./desired-state.js";
import type { ObservedPort } from "./plan.js";

/** The protocol's VIF report (src/protocol/schemas.ts) is the one type reports travel in. */
export type { VifReport };
export type VifState = VifReport["state"];

/** The DHCPv6 identity a port's guest was seen sending (src/dhcp-observe), by the port's device. */
export type IdentityLookup = (device: string) => ObservedDuid | undefined;

export function vifReport(fields: {
  vmUuid: string;
  mac: Mac;
  state: VifState;
  networkId?: string;
  device?: string;
  bridge?: string;
  ipv6?: readonly string[];
  observedDuid?: ObservedDuid | undefined;
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
  if (fields.ipv6 !== undefined && fields.ipv6.length > 0) report.ipv6 = [...fields.ipv6];
  if (fields.observedDuid !== undefined) report.observedDuid = fields.observedDuid;
  return report;
}

/**
 * Reports for every desired NIC and every observed port: the full inventory sent after each
 * (re)connect, and the source of change reports (compare with `sameReport`).
 */
export function allVifReports(desired: DesiredState, observedPorts: readonly ObservedPort[], identity?: IdentityLookup): VifReport[] {
  const observed = observedPorts.filter(isReported);
  const byMac = new Map(observed.map((port) => [port.mac as string, port]));
  const reports: VifReport[] = [];
  const seen = new Set<string>();
  for (const vm of desired.vms) {
    for (const nic of vm.nics) {
      seen.add(nic.mac);
      reports.push(desiredNicReport(desired, vm.uuid, nic, byMac.get(nic.mac), identity));
    }
  }
  for (const port of observed) if (!seen.has(port.mac)) reports.push(observedPortReport(desired, port, identity));
  return reports;
}

/**
 * The reports of one VM: the same as `allVifReports(desired, observed)` filtered on `vmUuid`, at
 * the cost of that VM's NICs rather than the host's (a nic.plug with 1,000 ports on the host
 * built 2,000 reports to send one). `portsByMac` indexes every observed port by MAC,
 * `observedOfVm` are the VM's own.
 */
export function vmVifReports(
  desired: DesiredState,
  vmUuid: string,
  portsByMac: ReadonlyMap<string, ObservedPort>,
  observedOfVm: readonly ObservedPort[],
  identity?: IdentityLookup,
): VifReport[] {
  const vm = desired.vms.find((candidate) => candidate.uuid === vmUuid);
  const reports = (vm?.nics ?? []).map((nic) => desiredNicReport(desired, vmUuid, nic, portsByMac.get(nic.mac), identity));
  for (const port of observedOfVm.filter(isReported)) {
    // A port whose MAC some VM's desired NIC claims is reported with that NIC.
    if (findNic(desired, port.mac) === undefined) reports.push(observedPortReport(desired, port, identity));
  }
  return reports;
}

/** A NIC is reported under its primary device; its emulated twin shares its rules, not its report. */
export function isReported(port: ObservedPort): boolean {
  return port.emulated !== true;
}

/** A desired NIC: protected when its port is observed, detached otherwise. */
function desiredNicReport(
  desired: DesiredState,
  vmUuid: string,
  nic: DesiredNic,
  port: ObservedPort | undefined,
  identity: IdentityLookup | undefined,
): VifReport {
  const bridge = port?.bridge ?? desired.networks.find((n) => n.networkId === nic.networkId)?.bridge;
  return vifReport({
    vmUuid,
    mac: nic.mac,
    networkId: nic.networkId,
    ipv6: nic.ipv6,
    state: port === undefined ? "detached" : "protected",
    device: port?.device,
    bridge,
    observedDuid: port === undefined ? undefined : identity?.(port.device),
  });
}

/** An observed port no desired NIC claims (a VM started outside the agent): protected, pinned to its MAC. */
function observedPortReport(desired: DesiredState, port: ObservedPort, identity: IdentityLookup | undefined): VifReport {
  const network = desired.networks.find((n) => n.bridge === port.bridge);
  return vifReport({
    vmUuid: port.vmUuid,
    mac: port.mac,
    state: "protected",
    device: port.device,
    bridge: port.bridge,
    networkId: network?.networkId,
    observedDuid: identity?.(port.device),
  });
}

export function sameReport(a: VifReport, b: VifReport): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

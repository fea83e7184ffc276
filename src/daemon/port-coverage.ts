import type { VifReport } from "../agent/vif-report.js";
import { type DropReason, dropReasons, type PortCounters } from "../firewall/model.js";

/** A guest port the agent knows (the hypervisor shows it on a managed bridge). */
export interface CoveredPort {
  device: string;
  vmUuid: string;
  mac: string;
  bridge?: string;
  networkId?: string;
}

/** Packets (and bytes) one device dropped for one reason. */
export interface PortDrop {
  port: string;
  /** The VM whose port it is; absent for an uplink (`rogueRouter`) or a device the agent does not know. */
  vm?: string;
  reason: DropReason;
  packets: number;
  bytes: number;
}

export interface PortCoverage {
  /** Ports whose rules the firewall holds now. */
  protected: CoveredPort[];
  /** Ports the agent knows whose rules the firewall does not hold (a failed install, rules deleted by hand). */
  unprotected: CoveredPort[];
  /** Every non-zero drop counter, by device and reason. */
  drops: PortDrop[];
}

/**
 * The agent's guest ports judged by what the firewall holds *now* (its per-port counters list
 * every port it has rules for), not by what the agent believes it installed: for
 * `v6agent status` and the metrics, both read when asked.
 */
export function portCoverage(vifs: readonly VifReport[], counters: readonly PortCounters[]): PortCoverage {
  const live = new Map(counters.map((counter) => [counter.device, counter]));
  const ports: CoveredPort[] = vifs.flatMap((vif) =>
    vif.device === undefined || vif.state !== "protected"
      ? []
      : [{ device: vif.device, vmUuid: vif.vmUuid, mac: vif.mac, bridge: vif.bridge, networkId: vif.networkId }],
  );
  const vmOf = new Map(ports.map((port) => [port.device, port.vmUuid]));
  const drops: PortDrop[] = [];
  for (const counter of counters) {
    for (const reason of dropReasons) {
      const { packets, bytes } = counter[reason];
      if (packets > 0) drops.push({ port: counter.device, vm: vmOf.get(counter.device), reason, packets, bytes });
    }
  }
  return {
    protected: ports.filter((port) => live.has(port.device)),
    unprotected: ports.filter((port) => !live.has(port.device)),
    drops,
  };
}

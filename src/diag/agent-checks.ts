import type { DesiredState } from "../agent/desired-state.js";
import { observedPorts, planFirewall } from "../agent/plan.js";
import { allVifReports } from "../agent/vif-report.js";
import type { Firewall, GuestPort } from "../firewall/model.js";
import type { Hypervisor, VmInfo } from "../hypervisor/hypervisor.js";
import { type CheckResult, fail, ok, type VifRow } from "./check.js";

export interface AgentCheckInputs {
  desired: DesiredState;
  firewall: Firewall;
  /** Connected already, or connectable; absent when the hypervisor is not configured. */
  hypervisor?: Hypervisor;
}

/**
 * Desired versus live: what the agent's next reconcile would change, found without changing it.
 * Reads the desired state file, the hypervisor and the live firewall; writes nothing.
 */
export async function agentChecks(inputs: AgentCheckInputs): Promise<{ checks: CheckResult[]; vifs: VifRow[] }> {
  const checks: CheckResult[] = [];
  let vms: VmInfo[] = [];
  if (inputs.hypervisor !== undefined) {
    try {
      const facts = await inputs.hypervisor.facts();
      vms = await inputs.hypervisor.listVms();
      checks.push(ok("hypervisor", `${facts.kind} ${facts.hypervisorVersion} on ${facts.hostname}: ${vms.length} VM(s)`));
    } catch (error) {
      checks.push(
        fail(
          "hypervisor",
          `cannot reach the hypervisor: ${(error as Error).message}`,
          "start libvirtd / check the XAPI URL and credentials in the config",
        ),
      );
    }
  }
  const observed = observedPorts(inputs.desired, vms);
  const plan = planFirewall(inputs.desired, observed, []);
  const live = await inputs.firewall.readLive();
  const liveBridges = new Set(live.bridges.map((bridge) => bridge.name as string));
  for (const bridge of plan.bridges) {
    if (liveBridges.has(bridge.name))
      checks.push(ok(`firewall.bridge.${bridge.name}`, `bridge ${bridge.name} is managed (unknown ports dropped)`));
    else
      checks.push(
        fail(
          `firewall.bridge.${bridge.name}`,
          `bridge ${bridge.name} has no rules: its ports are not filtered`,
          "restart the agent or wait for its periodic reconcile",
        ),
      );
  }
  const livePorts = new Map(live.ports.map((port) => [port.device as string, port]));
  const wantedPorts = new Set(plan.ports.map((port) => port.device as string));
  for (const port of plan.ports) {
    const installed = livePorts.get(port.device);
    if (installed === undefined) {
      checks.push(
        fail(
          `firewall.port.${port.device}`,
          `${port.device} (${port.mac}) has no rules: its chain is missing`,
          "restart the agent or wait for its periodic reconcile",
        ),
      );
    } else if (!samePort(installed, port)) {
      checks.push(
        fail(
          `firewall.port.${port.device}`,
          `${port.device} rules differ from the desired state`,
          "restart the agent or wait for its periodic reconcile",
        ),
      );
    } else {
      checks.push(ok(`firewall.port.${port.device}`, `${port.device} protected (${port.mac})`));
    }
  }
  for (const port of live.ports) {
    if (!wantedPorts.has(port.device)) {
      checks.push(
        fail(
          `firewall.port.${port.device}`,
          `${port.device} has rules but no such guest NIC is running`,
          "the agent's next reconcile removes them",
        ),
      );
    }
  }
  const counters = new Map((await inputs.firewall.counters()).map((counter) => [counter.device, counter]));
  const vifs: VifRow[] = allVifReports(inputs.desired, observed).map((report) => {
    const counter = report.device === undefined ? undefined : counters.get(report.device);
    return {
      vm: report.vmUuid,
      mac: report.mac,
      duidLL: report.duidLL,
      linkLocal: report.linkLocal,
      rulesPresent: report.device !== undefined && livePorts.has(report.device),
      ...(report.device === undefined ? {} : { device: report.device }),
      ...(counter === undefined
        ? {}
        : {
            drops: {
              ra: counter.ra.packets,
              dhcpv6Server: counter.dhcpv6Server.packets,
              spoof: counter.spoof.packets,
              fragment: counter.fragment.packets,
              ipv4: counter.ipv4.packets,
            },
          }),
    };
  });
  return { checks, vifs };
}

function samePort(a: GuestPort, b: GuestPort): boolean {
  const key = (port: GuestPort) =>
    JSON.stringify([port.device, port.bridge, port.mac, [...port.linkLocals].sort(), [...port.ipv6].sort(), [...port.ipv4].sort()]);
  return key(a) === key(b);
}

import { dropPackets, type Firewall, type FirewallState, type GuestPort } from "../firewall/model.js";
import { bridgeChecks } from "./bridges.js";
import { type CheckResult, type DiagNetwork, type DiagPort, type DiagVif, fail, ok, type VifRow, warn } from "./check.js";
import { dhcpIdentityChecks } from "./dhcp-identity.js";
import { type DeviceRole, sysctlChecks } from "./sysctl.js";

/**
 * What the agent checks compare, as plain data from the caller (the daemon computes it from its
 * desired state and the hypervisor's VMs with the agent core's own planner).
 */
export interface AgentCheckInputs {
  networks: readonly DiagNetwork[];
  /** The firewall state the agent's next reconcile would write. */
  plan: FirewallState;
  /** Guest ports the hypervisor shows on managed bridges. */
  ports: readonly DiagPort[];
  /** Every VIF as the agent would report it. */
  vifs: readonly DiagVif[];
  firewall: Firewall;
  /**
   * Whether any rule of this backend is live at all (undefined: not known). None means the agent
   * never ran here (or its rules were removed), which the ruleset check says instead of "edited".
   */
  rulesLive?: boolean | undefined;
  /** The namespace holding the host side (config `netns`). */
  netns?: string | undefined;
}

const RECONCILE = "restart the agent (systemctl restart v6agent): its reconcile rewrites the rules";
const FIRST_START = "start the agent (systemctl start v6agent): it writes its rules before it says hello";

/**
 * Desired versus live: what the agent's next reconcile would change, found without changing it.
 * Reads the desired state file, the hypervisor, the links, their sysctls and the live firewall;
 * writes nothing.
 */
export async function agentChecks(inputs: AgentCheckInputs): Promise<{ checks: CheckResult[]; vifs: VifRow[] }> {
  const checks: CheckResult[] = [];
  const { plan, ports: observed } = inputs;
  const emulated = new Set<string>(observed.filter((port) => port.emulated === true).map((port) => port.device));
  checks.push(...(await bridgeChecks(inputs.networks, inputs.netns)));
  const devices: { device: string; role: DeviceRole }[] = [
    ...inputs.networks.flatMap((network) => [
      { device: network.bridge as string, role: "bridge" as const },
      ...network.trustedPorts.map((port) => ({ device: port as string, role: "uplink" as const })),
    ]),
    ...plan.ports.map((port) => ({
      device: port.device as string,
      role: emulated.has(port.device) ? ("emulated port" as const) : ("port" as const),
    })),
  ];
  checks.push(...(await sysctlChecks(devices, inputs.netns)));
  const live = await inputs.firewall.readLive();
  const liveBridges = new Map(live.bridges.map((bridge) => [bridge.name as string, bridge]));
  for (const bridge of plan.bridges) {
    const installed = liveBridges.get(bridge.name);
    if (installed !== undefined) {
      // Fail closed needs guest-port name patterns or nft bridge meta (docs/security.md, limits).
      const patterns = installed.guestPortPatterns ?? [];
      const unknown =
        patterns.length > 0
          ? `unknown ports matching ${[...patterns].sort().join(" ")} dropped`
          : "unknown ports dropped only where nft has bridge meta";
      const trusted = installed.trustedPorts.length === 0 ? "no trusted port" : `trusted ${installed.trustedPorts.join(", ")}`;
      checks.push(ok(`firewall.bridge.${bridge.name}`, `bridge ${bridge.name} has rules (${trusted}; ${unknown})`));
    } else checks.push(fail(`firewall.bridge.${bridge.name}`, `bridge ${bridge.name} has no rules: its ports are not filtered`, RECONCILE));
  }
  const vmOf = (device: string) => observed.find((candidate) => candidate.device === device)?.vmUuid ?? "pending";
  const livePorts = new Map(live.ports.map((port) => [port.device as string, port]));
  /** Ports whose live rules are exactly the desired ones (half a port's rules is not "present"). */
  const complete = new Set<string>();
  const wantedPorts = new Set(plan.ports.map((port) => port.device as string));
  for (const port of plan.ports) {
    const installed = livePorts.get(port.device);
    if (installed === undefined) {
      checks.push(
        fail(
          `firewall.port.${port.device}`,
          `${port.device} (${port.mac}, VM ${vmOf(port.device)}) has no rules: its chain is missing`,
          RECONCILE,
        ),
      );
    } else if (!samePort(installed, port)) {
      checks.push(
        fail(
          `firewall.port.${port.device}`,
          `${port.device} (VM ${vmOf(port.device)}) rules differ from the desired state (${difference(installed, port)})`,
          RECONCILE,
        ),
      );
    } else {
      complete.add(port.device);
      checks.push(ok(`firewall.port.${port.device}`, `${port.device} protected (${port.mac}, VM ${vmOf(port.device)})`));
    }
  }
  for (const port of live.ports) {
    if (!wantedPorts.has(port.device)) {
      checks.push(
        fail(
          `firewall.port.${port.device}`,
          `${port.device} has a stale chain (${port.mac || "unknown MAC"}): no running guest NIC has this device`,
          RECONCILE,
        ),
      );
    }
  }
  // What the agent's next reconcile would write, computed by the backend itself without writing:
  // catches what readLive cannot show, such as a port chain nothing dispatches to any more, or
  // a shared chain edited by hand.
  const dryRun = await inputs.firewall.reconcile(plan, { dryRun: true });
  for (const device of dryRun.removedPorts.filter((candidate) => !livePorts.has(candidate))) {
    checks.push(fail(`firewall.port.${device}`, `${device} has a stale chain that nothing dispatches to (the device is gone)`, RECONCILE));
  }
  const firewallFailed = checks.some((check) => check.name.startsWith("firewall.") && check.status === "fail");
  if (!dryRun.changed) {
    checks.push(
      ok(
        "firewall.ruleset",
        `live ${inputs.firewall.backend} rules are exactly the desired ones (${plan.bridges.length} bridge(s), ${plan.ports.length} port(s))`,
      ),
    );
  } else if (inputs.rulesLive === false) {
    const message = `not yet applied: no ${inputs.firewall.backend} rules of this agent are live (the agent has not run on this host yet, or its rules were removed)`;
    // Nothing desired yet: nothing is unprotected, the host only waits for its first start.
    checks.push(
      plan.bridges.length === 0 ? warn("firewall.ruleset", message, FIRST_START) : fail("firewall.ruleset", message, FIRST_START),
    );
  } else if (!firewallFailed) {
    checks.push(
      fail(
        "firewall.ruleset",
        `the agent's shared ${inputs.firewall.backend} chains differ from what it writes (edited by hand?)`,
        RECONCILE,
      ),
    );
  }
  // Both backends: rules the other backend left (an earlier run) would judge the same ports too.
  const other = await inputs.firewall.otherBackendRules();
  const otherName = inputs.firewall.backend === "nft" ? "xtables" : "nft";
  checks.push(
    other.length === 0
      ? ok("firewall.other-backend", `no ${otherName} rules of this agent are live`)
      : fail("firewall.other-backend", `the ${otherName} backend's rules are live too (${other.join("; ")})`, RECONCILE),
  );
  const counters = new Map((await inputs.firewall.counters()).map((counter) => [counter.device, counter]));
  const vifs: VifRow[] = inputs.vifs.map((report) => {
    const counter = report.device === undefined ? undefined : counters.get(report.device);
    return {
      vm: report.vmUuid,
      mac: report.mac,
      duidLL: report.duidLL,
      linkLocal: report.linkLocal,
      rulesPresent: report.device !== undefined && complete.has(report.device),
      device: report.device,
      observedDuid: report.observedDuid === undefined ? undefined : `${report.observedDuid.typeName} ${report.observedDuid.duid}`,
      duidMatches: report.observedDuid?.matchesDuidLL,
      ...(counter === undefined
        ? {}
        : {
            drops: dropPackets(counter),
          }),
    };
  });
  checks.push(...dhcpIdentityChecks(inputs.vifs));
  return { checks, vifs };
}

function samePort(a: GuestPort, b: GuestPort): boolean {
  const key = (port: GuestPort) =>
    JSON.stringify([port.device, port.bridge, port.mac, [...port.linkLocals].sort(), [...port.ipv6].sort(), [...port.ipv4].sort()]);
  return key(a) === key(b);
}

function difference(live: GuestPort, wanted: GuestPort): string {
  const fields = ["bridge", "mac", "linkLocals", "ipv6", "ipv4"] as const;
  const text = (value: unknown) => (Array.isArray(value) ? `[${[...value].sort().join(" ")}]` : String(value));
  return fields
    .filter((field) => text(live[field]) !== text(wanted[field]))
    .map((field) => `${field}: live ${text(live[field])}, wanted ${text(wanted[field])}`)
    .join("; ");
}

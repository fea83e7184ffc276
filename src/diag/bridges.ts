import { type IpLink, listLinks } from "../hostnet/index.js";
import { type CheckResult, type DiagNetwork, fail, ok, warn } from "./check.js";
import { inNamespace } from "./sysctl.js";

const RESTART = "restart the agent: its reconcile re-provisions managed networks";

/**
 * Every managed network's bridge as the kernel shows it: it exists, is a bridge and is up, and
 * its trusted uplink port (the uplink or its VLAN sub-interface) is on it, with the right tag.
 * Read-only: `ip -json -details link show`, nothing else.
 */
export async function bridgeChecks(networks: readonly DiagNetwork[], netns?: string): Promise<CheckResult[]> {
  if (networks.length === 0) return [];
  const links = new Map((await listLinks({ netns })).map((link) => [link.ifname, link]));
  const results: CheckResult[] = [];
  for (const network of networks) {
    const name = `bridge.${network.bridge}`;
    const bridge = links.get(network.bridge);
    const label = `network ${network.networkId} (${network.prefix}${network.vlan === undefined ? "" : `, VLAN ${network.vlan}`})`;
    if (bridge === undefined) {
      results.push(fail(name, `${label}: bridge ${network.bridge} does not exist`, RESTART));
      continue;
    }
    if (bridge.linkinfo?.info_kind !== "bridge") {
      results.push(
        fail(
          name,
          `${label}: ${network.bridge} is a ${bridge.linkinfo?.info_kind ?? "plain"} device, not a bridge`,
          `${RESTART}, after removing it`,
        ),
      );
      continue;
    }
    if (!bridge.flags.includes("UP")) {
      results.push(fail(name, `${label}: bridge ${network.bridge} is down`, inNamespace(`ip link set ${network.bridge} up`, netns)));
      continue;
    }
    const problems: CheckResult[] = [];
    for (const port of network.trustedPorts) problems.push(...uplinkProblems(name, label, network, links.get(port), port, netns));
    if (network.vlan !== undefined && network.trustedPorts.length === 0) {
      problems.push(
        warn(name, `${label}: no uplink carries VLAN ${network.vlan}`, "set network.uplink in the config and restart the agent"),
      );
    }
    if (problems.length > 0) {
      results.push(...problems);
      continue;
    }
    const guests = [...links.values()].filter(
      (link) => link.master === network.bridge && !network.trustedPorts.includes(link.ifname as never),
    );
    const uplinks = network.trustedPorts.length === 0 ? "no uplink" : `uplink ${network.trustedPorts.join(", ")}`;
    results.push(ok(name, `${label}: bridge ${network.bridge} up, ${uplinks}, ${guests.length} guest port(s)`));
  }
  return results;
}

function uplinkProblems(
  name: string,
  label: string,
  network: DiagNetwork,
  link: IpLink | undefined,
  port: string,
  netns: string | undefined,
): CheckResult[] {
  if (link === undefined) return [fail(name, `${label}: uplink ${port} does not exist`, RESTART)];
  const problems: CheckResult[] = [];
  if (link.master !== network.bridge) {
    problems.push(
      fail(
        name,
        `${label}: uplink ${port} is ${link.master === undefined ? "on no bridge" : `on ${link.master}`}, not on ${network.bridge}: the router is unreachable`,
        inNamespace(`ip link set ${port} master ${network.bridge}`, netns),
      ),
    );
  }
  if (network.vlan !== undefined && port.includes(".")) {
    const tag = link.linkinfo?.info_data?.id;
    if (link.linkinfo?.info_kind !== "vlan" || tag !== network.vlan) {
      problems.push(
        fail(
          name,
          `${label}: uplink ${port} is not VLAN ${network.vlan} (kind ${link.linkinfo?.info_kind ?? "plain"}, id ${tag ?? "none"})`,
          RESTART,
        ),
      );
    }
  }
  if (!link.flags.includes("UP"))
    problems.push(fail(name, `${label}: uplink ${port} is down`, inNamespace(`ip link set ${port} up`, netns)));
  return problems;
}

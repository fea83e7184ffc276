import { type InterfaceName, parseInterfaceName, parseMtu, parseVlanId, type VlanId } from "../addressing/index.js";
import { InvalidArgumentError, V6Error } from "../errors.js";
import { vlanInterfaceName } from "./bridge-name.js";
import { bridgePorts, findLink, type HostnetOptions, type IpLink, ip, listLinks } from "./ip-link.js";
import { disableHostIpv6 } from "./sysctl.js";

/**
 * A shared network's bridge on a KVM host (design sections 1 and 2): the bridge, for a tagged
 * network a VLAN sub-interface of the host's uplink as its uplink port, the MTU, and IPv6 off
 * for the host on both. `ensureBridge` is idempotent and either completes or undoes what it
 * made; `removeBridge` refuses while guest ports remain.
 */
export interface SharedBridgeSpec {
  bridge: string;
  /** The host's uplink. Tagged networks get a VLAN sub-interface on it; untagged ones bridge it directly. */
  uplink?: string;
  vlan?: number;
  /** 1280 (the IPv6 minimum) to 65535; left as is when absent. */
  mtu?: number;
}

export interface BridgeState {
  bridge: InterfaceName;
  /** The bridge's uplink port: the VLAN sub-interface, the uplink itself, or none. */
  uplinkPort: InterfaceName | undefined;
  /** What this call changed, e.g. `created bridge v6vlan100`; empty when everything was in place. */
  changes: string[];
}

interface ValidSpec {
  bridge: InterfaceName;
  uplink: InterfaceName | undefined;
  vlan: VlanId | undefined;
  mtu: number | undefined;
}

function validate(spec: SharedBridgeSpec): ValidSpec {
  if (typeof spec !== "object" || spec === null) throw new InvalidArgumentError("network", "expected a bridge spec object");
  const bridge = parseInterfaceName(spec.bridge, "bridge");
  const uplink = spec.uplink === undefined ? undefined : parseInterfaceName(spec.uplink, "uplink");
  const vlan = spec.vlan === undefined ? undefined : parseVlanId(spec.vlan, "vlan");
  if (vlan !== undefined && uplink === undefined) {
    throw new InvalidArgumentError("uplink", `VLAN ${vlan} needs the host's uplink to carry it; none is configured`);
  }
  const mtu = spec.mtu === undefined ? undefined : parseMtu(spec.mtu, "mtu");
  return { bridge, uplink, vlan, mtu };
}

function kind(link: IpLink): string | undefined {
  return link.linkinfo?.info_kind;
}

function uplinkPortName(spec: ValidSpec): InterfaceName | undefined {
  if (spec.uplink === undefined) return undefined;
  return spec.vlan === undefined ? spec.uplink : vlanInterfaceName(spec.uplink, spec.vlan);
}

export async function ensureBridge(input: SharedBridgeSpec, options: HostnetOptions = {}): Promise<BridgeState> {
  const spec = validate(input);
  const links = await listLinks(options);
  const byName = new Map(links.map((link) => [link.ifname, link]));
  const portName = uplinkPortName(spec);

  // Every conflict is found before anything is changed.
  const existing = byName.get(spec.bridge);
  if (existing !== undefined && kind(existing) !== "bridge") {
    throw new V6Error("conflict", `${spec.bridge} exists and is a ${kind(existing) ?? "plain"} device, not a bridge`, { field: "bridge" });
  }
  const uplink = spec.uplink === undefined ? undefined : byName.get(spec.uplink);
  if (spec.uplink !== undefined && uplink === undefined) {
    throw new V6Error("not_found", `uplink ${spec.uplink} does not exist on this host`, { field: "uplink" });
  }
  if (spec.mtu !== undefined && uplink !== undefined && uplink.mtu < spec.mtu) {
    throw new V6Error("conflict", `MTU ${spec.mtu} exceeds the MTU ${uplink.mtu} of uplink ${uplink.ifname}`, { field: "mtu" });
  }
  const port = portName === undefined ? undefined : byName.get(portName);
  if (port !== undefined && spec.vlan !== undefined) {
    const data = port.linkinfo?.info_data;
    if (kind(port) !== "vlan" || data?.id !== spec.vlan || port.link !== spec.uplink) {
      throw new V6Error("conflict", `${port.ifname} exists but is not VLAN ${spec.vlan} on ${spec.uplink}`, { field: "vlan" });
    }
  }
  if (port?.master !== undefined && port.master !== spec.bridge) {
    throw new V6Error("conflict", `${port.ifname} is already a port of bridge ${port.master}`, { field: "uplink" });
  }

  const changes: string[] = [];
  const created: string[] = [];
  try {
    if (existing === undefined) {
      // No STP and no forwarding delay: a guest's port forwards from its first frame, so its
      // first Router Solicitation and DHCPv6 Solicit are not lost.
      await ip(["link", "add", "name", spec.bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"], options);
      created.push(spec.bridge);
      changes.push(`created bridge ${spec.bridge}`);
    }
    // Before the bridge is up, so it never gets even a link-local address.
    await disableHostIpv6(spec.bridge, options);
    if (portName !== undefined && spec.vlan !== undefined && port === undefined) {
      await ip(["link", "add", "link", spec.uplink as string, "name", portName, "type", "vlan", "id", String(spec.vlan)], options).catch(
        (error: unknown) => {
          throw new V6Error(
            "host_failure",
            `creating VLAN ${spec.vlan} on ${spec.uplink} as ${portName} failed: ${(error as Error).message}`,
            {
              field: "vlan",
              cause: error,
            },
          );
        },
      );
      created.push(portName);
      changes.push(`created VLAN interface ${portName}`);
    }
    if (portName !== undefined && spec.vlan !== undefined) await disableHostIpv6(portName, options);
    if (spec.mtu !== undefined) {
      for (const name of [portName, spec.bridge]) {
        if (name === undefined || name === spec.uplink) continue;
        const current = name === spec.bridge ? existing?.mtu : port?.mtu;
        if (current !== spec.mtu) {
          await ip(["link", "set", "dev", name, "mtu", String(spec.mtu)], options);
          changes.push(`set MTU ${spec.mtu} on ${name}`);
        }
      }
    }
    if (portName !== undefined && port?.master !== spec.bridge) {
      await ip(["link", "set", "dev", portName, "master", spec.bridge], options);
      changes.push(`added ${portName} to ${spec.bridge}`);
    }
    if (portName !== undefined && !(port?.flags.includes("UP") ?? false)) {
      await ip(["link", "set", "dev", portName, "up"], options);
      changes.push(`set ${portName} up`);
    }
    if (!(existing?.flags.includes("UP") ?? false)) {
      await ip(["link", "set", "dev", spec.bridge, "up"], options);
      changes.push(`set ${spec.bridge} up`);
    }
  } catch (error) {
    // Nothing half-made: undo what this call created, newest first.
    for (const name of created.reverse()) {
      await ip(["link", "del", "dev", name], options).catch(() => {});
    }
    throw error;
  }
  return { bridge: spec.bridge, uplinkPort: portName, changes };
}

/**
 * Removes a shared network's bridge and its VLAN sub-interface (an untagged uplink is only
 * released). Refuses, changing nothing, while any other port (a guest) is on the bridge.
 * Returns false when there was no such bridge.
 */
export async function removeBridge(input: SharedBridgeSpec, options: HostnetOptions = {}): Promise<boolean> {
  const spec = validate(input);
  const bridge = await findLink(spec.bridge, options);
  if (bridge === undefined) return false;
  if (kind(bridge) !== "bridge") {
    throw new V6Error("conflict", `${spec.bridge} is a ${kind(bridge) ?? "plain"} device, not a bridge; not removing it`, {
      field: "bridge",
    });
  }
  const portName = uplinkPortName(spec);
  const ports = await bridgePorts(spec.bridge, options);
  const guests = ports.filter((port) => port.ifname !== portName).map((port) => port.ifname);
  if (guests.length > 0) {
    throw new V6Error("conflict", `bridge ${spec.bridge} still has guest ports: ${guests.join(", ")}`, { field: "bridge" });
  }
  const port = ports.find((candidate) => candidate.ifname === portName);
  if (port !== undefined && spec.vlan !== undefined && kind(port) === "vlan") {
    await ip(["link", "del", "dev", port.ifname], options);
  } else if (port !== undefined) {
    await ip(["link", "set", "dev", port.ifname, "nomaster"], options);
  }
  await ip(["link", "del", "dev", spec.bridge], options);
  return true;
}

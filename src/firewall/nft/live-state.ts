import { parseIpv6Network } from "../../addressing/index.js";
import type { FirewallState, GuestPort, ManagedBridge, RouterPolicy } from "../model.js";
import { keyDevice, type SetElement } from "./elements.js";
import type { NftLiveTable } from "./live.js";
import { bridgeObjects, PORT_SETS, ROUTER_SETS } from "./names.js";

/** The per-device elements of the live table (ports' and uplinks'), by device. */
export function liveElements(live: NftLiveTable): Map<string, SetElement[]> {
  const byDevice = new Map<string, SetElement[]>();
  for (const set of [...Object.values(PORT_SETS), ...Object.values(ROUTER_SETS)]) {
    for (const key of live.sets.get(set) ?? []) {
      const device = keyDevice(key);
      const list = byDevice.get(device) ?? [];
      list.push({ set, key });
      byDevice.set(device, list);
    }
  }
  return byDevice;
}

/** The model as the live table holds it. */
export function liveState(live: NftLiveTable): FirewallState {
  const elements = liveElements(live);
  const second = (device: string, set: string) =>
    (elements.get(device) ?? []).filter((e) => e.set === set).map((e) => e.key.split(" . ")[1] ?? "");
  const bridges: ManagedBridge[] = [];
  for (const chain of live.chains.keys()) {
    if (!chain.startsWith("bridge_")) continue;
    const name = chain.slice("bridge_".length);
    const o = bridgeObjects(name);
    const trustedPorts = (live.sets.get(o.trustedSet) ?? []).map(keyDevice);
    const bridge = { name, trustedPorts } as ManagedBridge;
    const patterns = (live.sets.get(o.guestSet) ?? []).map(keyDevice);
    if (patterns.length > 0) bridge.guestPortPatterns = patterns;
    const uplink = trustedPorts.find((port) => second(port, ROUTER_SETS.mac).length > 0);
    if (uplink !== undefined) bridge.router = routerOf(uplink, second);
    bridges.push(bridge);
  }
  const ports: GuestPort[] = [];
  for (const key of live.sets.get(PORT_SETS.guests) ?? []) {
    const device = keyDevice(key);
    const comment = live.comments.get(`${PORT_SETS.guests} ${key}`) ?? "";
    const own = second(device, PORT_SETS.ip6);
    ports.push({
      device,
      bridge: /bridge=(\S+)/.exec(comment)?.[1] ?? "",
      mac: /mac=(\S+)/.exec(comment)?.[1] ?? "",
      linkLocals: own.filter((a) => a.startsWith("fe80:")),
      ipv6: own.filter((a) => !a.startsWith("fe80:")),
      ipv4: second(device, PORT_SETS.ip4),
    } as GuestPort);
  }
  return { bridges, ports };
}

function routerOf(uplink: string, second: (device: string, set: string) => string[]): RouterPolicy {
  const router = {
    mac: second(uplink, ROUTER_SETS.mac)[0] ?? "",
    linkLocal: second(uplink, ROUTER_SETS.linkLocal)[0] ?? "",
    // A plain ifname set: membership is the flag.
    requireManagedFlag: second(uplink, ROUTER_SETS.managed).length > 0,
  } as RouterPolicy;
  const prefix = second(uplink, ROUTER_SETS.prefix)[0];
  if (prefix !== undefined) router.prefix = prefixFromInteger(prefix);
  return router;
}

/** `0x20010db800010001` → `2001:db8:1:1::/64`. */
function prefixFromInteger(value: string): string {
  const hex = BigInt(value).toString(16).padStart(16, "0");
  const groups = [0, 1, 2, 3].map((i) => hex.slice(i * 4, i * 4 + 4));
  return parseIpv6Network(`${groups.join(":")}::/64`).cidr;
}

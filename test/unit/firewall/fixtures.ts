import type { FirewallState, GuestPort, ManagedBridge } from "../../../src/firewall/model.js";

/** A fixed state the golden files are rendered from. */
export const bridge = { name: "br0", trustedPorts: ["uplink0"], guestPortPatterns: ["vnet*"] } as unknown as ManagedBridge;

export const port = {
  device: "vnet1",
  bridge: "br0",
  mac: "52:54:00:12:34:56",
  linkLocals: ["fe80::5054:ff:fe12:3456"],
  ipv6: ["2001:db8:1:1::10"],
  ipv4: ["192.0.2.10"],
} as unknown as GuestPort;

export const state: FirewallState = { bridges: [bridge], ports: [port] };

/** The same bridge with its router named: the uplink is guarded. */
export const guardedBridge = {
  ...bridge,
  router: { mac: "52:54:00:00:00:01", linkLocal: "fe80::1", requireManagedFlag: true, prefix: "2001:db8:1:1::/64" },
} as unknown as ManagedBridge;

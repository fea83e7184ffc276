import type { Static } from "@sinclair/typebox";
import type { METHOD_SCHEMAS } from "./method-schemas.js";

/**
 * The WebSocket subprotocol naming protocol version 1 ("v6agent/1" in prose). RFC 6455 makes a
 * subprotocol an HTTP token, where "/" is not allowed, so the wire name is `v6agent.v1`. A peer
 * that offers no version we speak is refused at the upgrade.
 */
export const SUBPROTOCOL = "v6agent.v1";

type Direction = "server-to-agent" | "agent-to-server";

interface MethodSpec<D extends Direction> {
  readonly direction: D;
  readonly summary: string;
}

function method<D extends Direction>(direction: D, summary: string): MethodSpec<D> {
  return { direction, summary };
}

/** Every method of protocol v6agent/1 (schemas: ./method-schemas.ts). */
export const METHODS = {
  "network.ensure": method(
    "server-to-agent",
    "Create (or confirm) the bridge, VLAN and port-policy skeleton of a shared /64 network. Idempotent.",
  ),
  "network.remove": method("server-to-agent", "Remove a network that no NIC uses. Idempotent."),
  "nic.plug": method("server-to-agent", "Install the port policy, then attach a NIC to a running VM; answers the VIF report."),
  "nic.unplug": method("server-to-agent", "Detach a NIC and remove its port policy. Idempotent."),
  "vm.deploy": method("server-to-agent", "Define and start a VM (KVM) with its NICs protected from the first frame."),
  "vm.stop": method("server-to-agent", "Shut a VM down (force: power off)."),
  "vm.list": method("server-to-agent", "List the host's VMs and their NICs."),
  "state.sync": method(
    "server-to-agent",
    "The full desired state: the agent reconciles networks and NIC policies to it and reports every VIF.",
  ),
  "host.diagnose": method("server-to-agent", "Run the host checks of `v6agent diag`."),
  "agent.hello": method(
    "agent-to-server",
    "First request on every connection: host facts, capabilities, full inventory and the resume token of the last session.",
  ),
  "agent.heartbeat": method("agent-to-server", "Periodic VM and VIF states; its answer proves the server is alive."),
  "agent.ping": method(
    "agent-to-server",
    "A cheap round trip: its answer proves the server read every frame the agent sent before it (delivery confirmation of results).",
  ),
  "vif.report": method(
    "agent-to-server",
    "A VIF's MAC, DUID-LL, link-local address, device, bridge and state; the answer acknowledges it.",
  ),
} as const;

export type MethodName = keyof typeof METHODS;
export type ServerMethod = { [M in MethodName]: (typeof METHODS)[M]["direction"] extends "server-to-agent" ? M : never }[MethodName];
export type AgentMethod = { [M in MethodName]: (typeof METHODS)[M]["direction"] extends "agent-to-server" ? M : never }[MethodName];
export type MethodParams<M extends MethodName> = Static<(typeof METHOD_SCHEMAS)[M]["params"]>;
export type MethodResult<M extends MethodName> = Static<(typeof METHOD_SCHEMAS)[M]["result"]>;

export function isMethodName(name: string): name is MethodName {
  return Object.hasOwn(METHODS, name);
}

import type { Static, TSchema } from "@sinclair/typebox";
import * as S from "./schemas.js";

/**
 * The WebSocket subprotocol naming protocol version 1 ("v6agent/1" in prose). RFC 6455 makes a
 * subprotocol an HTTP token, where "/" is not allowed, so the wire name is `v6agent.v1`. A peer
 * that offers no version we speak is refused at the upgrade.
 */
export const SUBPROTOCOL = "v6agent.v1";

type Direction = "server-to-agent" | "agent-to-server";

interface MethodSpec<D extends Direction, P extends TSchema, R extends TSchema> {
  readonly direction: D;
  readonly params: P;
  readonly result: R;
  readonly summary: string;
}

function method<D extends Direction, P extends TSchema, R extends TSchema>(
  direction: D,
  params: P,
  result: R,
  summary: string,
): MethodSpec<D, P, R> {
  return { direction, params, result, summary };
}

/** Every method of protocol v6agent/1. */
export const METHODS = {
  "network.ensure": method(
    "server-to-agent",
    S.NetworkEnsureParams,
    S.NetworkEnsureResult,
    "Create (or confirm) the bridge, VLAN and port-policy skeleton of a shared /64 network. Idempotent.",
  ),
  "network.remove": method(
    "server-to-agent",
    S.NetworkRemoveParams,
    S.NetworkRemoveResult,
    "Remove a network that no NIC uses. Idempotent.",
  ),
  "nic.plug": method(
    "server-to-agent",
    S.NicPlugParams,
    S.NicPlugResult,
    "Install the port policy, then attach a NIC to a running VM; answers the VIF report.",
  ),
  "nic.unplug": method("server-to-agent", S.NicUnplugParams, S.NicUnplugResult, "Detach a NIC and remove its port policy. Idempotent."),
  "vm.deploy": method(
    "server-to-agent",
    S.VmDeployParams,
    S.VmDeployResult,
    "Define and start a VM (KVM) with its NICs protected from the first frame.",
  ),
  "vm.stop": method("server-to-agent", S.VmStopParams, S.VmStopResult, "Shut a VM down (force: power off)."),
  "vm.list": method("server-to-agent", S.VmListParams, S.VmListResult, "List the host's VMs and their NICs."),
  "state.sync": method(
    "server-to-agent",
    S.StateSyncParams,
    S.StateSyncResult,
    "The full desired state: the agent reconciles networks and NIC policies to it and reports every VIF.",
  ),
  "host.diagnose": method("server-to-agent", S.HostDiagnoseParams, S.HostDiagnoseResult, "Run the host checks of `v6agent diag`."),
  "agent.hello": method(
    "agent-to-server",
    S.AgentHelloParams,
    S.AgentHelloResult,
    "First request on every connection: host facts, capabilities, full inventory and the resume token of the last session.",
  ),
  "agent.heartbeat": method(
    "agent-to-server",
    S.AgentHeartbeatParams,
    S.AgentHeartbeatResult,
    "Periodic VM and VIF states; its answer proves the server is alive.",
  ),
  "agent.ping": method(
    "agent-to-server",
    S.AgentPingParams,
    S.AgentPingResult,
    "A cheap round trip: its answer proves the server read every frame the agent sent before it (delivery confirmation of results).",
  ),
  "vif.report": method(
    "agent-to-server",
    S.VifReportParams,
    S.VifReportResult,
    "A VIF's MAC, DUID-LL, link-local address, device, bridge and state; the answer acknowledges it.",
  ),
} as const;

export type MethodName = keyof typeof METHODS;
export type ServerMethod = { [M in MethodName]: (typeof METHODS)[M]["direction"] extends "server-to-agent" ? M : never }[MethodName];
export type AgentMethod = { [M in MethodName]: (typeof METHODS)[M]["direction"] extends "agent-to-server" ? M : never }[MethodName];
export type MethodParams<M extends MethodName> = Static<(typeof METHODS)[M]["params"]>;
export type MethodResult<M extends MethodName> = Static<(typeof METHODS)[M]["result"]>;

export function isMethodName(name: string): name is MethodName {
  return Object.hasOwn(METHODS, name);
}

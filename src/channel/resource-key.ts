import type { MethodParams, ServerMethod } from "../protocol/index.js";
import { EXCLUSIVE } from "./command-scheduler.js";

/**
 * The default resource each command touches, for per-resource ordering: a VM's commands are
 * serialised by UUID, a network's by id, `nic.plug` holds both its VM and its network, and
 * `state.sync` (which may touch everything) runs alone. Read-only commands take no key.
 */
export function defaultResourceKey(method: ServerMethod, params: unknown): string | readonly string[] | undefined {
  switch (method) {
    case "vm.deploy":
    case "vm.stop":
      return `vm:${(params as MethodParams<"vm.stop">).uuid}`;
    case "nic.plug": {
      const plug = params as MethodParams<"nic.plug">;
      return [`vm:${plug.vmUuid}`, `network:${plug.networkId}`];
    }
    case "nic.unplug":
      return `vm:${(params as MethodParams<"nic.unplug">).vmUuid}`;
    case "network.ensure":
    case "network.remove":
      return `network:${(params as MethodParams<"network.remove">).networkId}`;
    case "state.sync":
      return EXCLUSIVE;
    case "vm.list":
    case "host.diagnose":
      return undefined;
  }
}

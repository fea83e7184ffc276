import { parseIpv6Network, parseMac, parseMtu, parseNicModel, parseUuid, parseVlanId } from "../addressing/index.js";
import type { CommandHandler } from "../channel/index.js";
import type { MethodParams, ServerMethod } from "../protocol/index.js";
import type { Agent, ReconcileSummary } from "./agent.js";
import { parseNetworkRouter } from "./desired-state.js";
import type { EnsureNetworkInput, NicInput } from "./inputs.js";

/**
 * Maps each protocol method to the agent core. The channel has already validated the params
 * against the protocol schema; here they become the addressing module's typed values (a /48
 * is refused with the addressing module's message, naming `params.prefix`).
 */
/** `diagnose` answers `host.diagnose` (the daemon's diag report; the core does not know its shape). */
export function commandHandler(agent: Agent, diagnose: () => Promise<unknown>): CommandHandler {
  const handle = async (method: ServerMethod, params: unknown): Promise<unknown> => {
    switch (method) {
      case "network.ensure":
        return agent.ensureNetwork(networkInput(params as MethodParams<"network.ensure">, "params"));
      case "network.remove": {
        const { networkId } = params as MethodParams<"network.remove">;
        return { networkId, removed: await agent.removeNetwork(networkId) };
      }
      case "nic.plug": {
        const plug = params as MethodParams<"nic.plug">;
        return agent.plugNic(parseUuid(plug.vmUuid, "params.vmUuid"), nicInput(plug, "params"));
      }
      case "nic.unplug": {
        const unplug = params as MethodParams<"nic.unplug">;
        await agent.unplugNic(parseUuid(unplug.vmUuid, "params.vmUuid"), parseMac(unplug.mac, "params.mac"));
        return { vmUuid: unplug.vmUuid, mac: unplug.mac, unplugged: true };
      }
      case "vm.deploy": {
        const deploy = params as MethodParams<"vm.deploy">;
        return agent.deployVm({
          uuid: parseUuid(deploy.uuid, "params.uuid"),
          name: deploy.name,
          memoryMiB: deploy.memoryMiB,
          vcpus: deploy.vcpus,
          boot: deploy.boot,
          nics: deploy.nics.map((nic, index) => nicInput(nic, `params.nics[${index}]`)),
        });
      }
      case "vm.stop": {
        const stop = params as MethodParams<"vm.stop">;
        return agent.stopVm(parseUuid(stop.uuid, "params.uuid"), stop.force ?? false);
      }
      case "vm.list":
        return {
          vms: (await agent.listVms()).map((vm) => ({ uuid: vm.uuid, name: vm.name, state: vm.state, nics: vm.nics.map(listedNic) })),
        };
      case "state.sync": {
        const sync = params as MethodParams<"state.sync">;
        const summary = await agent.syncState(
          sync.networks.map((network, index) => networkInput(network, `params.networks[${index}]`)),
          sync.vms.map((vm, vmIndex) => ({
            uuid: parseUuid(vm.uuid, `params.vms[${vmIndex}].uuid`),
            nics: vm.nics.map((nic, index) => nicInput(nic, `params.vms[${vmIndex}].nics[${index}]`)),
          })),
        );
        return { changes: describeChanges(summary), vifs: agent.inventory().vifs };
      }
      case "host.diagnose":
        return diagnose();
      default:
        // The channel only delivers server-to-agent methods; this is a programming error.
        throw new Error(`no handler for ${method satisfies never}`);
    }
  };
  return ((method, params) => handle(method, params)) as CommandHandler;
}

function networkInput(params: MethodParams<"network.ensure">, field: string): EnsureNetworkInput {
  return {
    networkId: params.networkId,
    network: parseIpv6Network(params.prefix, `${field}.prefix`),
    gateway: params.gateway,
    vlan: params.vlan === undefined ? undefined : parseVlanId(params.vlan, `${field}.vlan`),
    mtu: params.mtu === undefined ? undefined : parseMtu(params.mtu, `${field}.mtu`),
    router: params.router === undefined ? undefined : parseNetworkRouter(params.router, `${field}.router`),
  };
}

function nicInput(params: { networkId: string; mac: string; model?: string; ipv6?: string[]; ipv4?: string[] }, field: string): NicInput {
  return {
    networkId: params.networkId,
    mac: parseMac(params.mac, `${field}.mac`),
    model: params.model === undefined ? undefined : parseNicModel(params.model, `${field}.model`),
    ipv6: params.ipv6,
    ipv4: params.ipv4,
  };
}

function listedNic(nic: { mac: string; device: string | undefined; bridge: string | undefined; model: string }) {
  return {
    mac: nic.mac,
    model: nic.model,
    device: nic.device,
    bridge: nic.bridge,
  };
}

function describeChanges(summary: ReconcileSummary): string[] {
  return [
    ...summary.firewall.addedPorts.map((port) => `protected port ${port}`),
    ...summary.firewall.updatedPorts.map((port) => `updated rules of port ${port}`),
    ...summary.firewall.removedPorts.map((port) => `removed rules of port ${port}`),
  ];
}

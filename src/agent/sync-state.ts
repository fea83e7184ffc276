import type { Mac } from "../addressing/index.js";
import type { VmInfo } from "../hypervisor/hypervisor.js";
import type { Logger } from "../log.js";
import type { ReconcileSummary } from "./agent.js";
import type { DesiredRecord } from "./desired-record.js";
import { nicsOnNetwork, withNic, withoutNic } from "./desired-state.js";
import type { EnsureNetworkInput, NicInput } from "./inputs.js";
import type { VifReport } from "./vif-report.js";

/** What `syncState` needs of the agent core: its state and its own commands. */
export interface SyncOperations {
  record: DesiredRecord;
  /** The VM, or undefined when there is none. */
  vm(uuid: string): Promise<VmInfo | undefined>;
  ensureNetwork(input: EnsureNetworkInput): Promise<unknown>;
  removeNetwork(networkId: string): Promise<boolean>;
  plugNic(vmUuid: string, input: NicInput): Promise<VifReport>;
  unplugNic(vmUuid: string, mac: Mac): Promise<VifReport>;
  reconcile(): Promise<ReconcileSummary>;
  log: Logger;
}

/**
 * state.sync: the server's full desired state replaces ours. Networks are ensured, networks
 * no longer wanted and free of NICs are removed, NICs missing on existing VMs are attached
 * and NICs on managed bridges of listed VMs that the server no longer wants are detached.
 * VMs the server does not list are left alone (still protected and reported).
 */
export async function syncState(
  ops: SyncOperations,
  networks: EnsureNetworkInput[],
  vms: { uuid: string; nics: NicInput[] }[],
): Promise<ReconcileSummary> {
  for (const network of networks) await ops.ensureNetwork(network);
  for (const [vmIndex, vm] of vms.entries()) {
    const wanted = vm.nics.map((nic, index) => ops.record.nic(nic, `params.vms[${vmIndex}].nics[${index}]`));
    const info = await ops.vm(vm.uuid);
    const managed = new Set<string>(ops.record.state.networks.map((n) => n.bridge));
    if (info !== undefined) {
      for (const nic of info.nics) {
        if (nic.bridge !== undefined && managed.has(nic.bridge) && !wanted.some((w) => w.mac === nic.mac)) {
          await ops.unplugNic(vm.uuid, nic.mac);
        }
      }
      for (const nic of wanted) await ops.plugNic(vm.uuid, nic);
    } else {
      let next = ops.record.state;
      for (const nic of wanted) next = withNic(next, vm.uuid, nic);
      await ops.record.commit(next);
    }
  }
  const listed = new Set(vms.map((vm) => vm.uuid));
  const keepIds = new Set(networks.map((n) => n.networkId));
  for (const vm of ops.record.state.vms) {
    if (!listed.has(vm.uuid)) {
      let next = ops.record.state;
      for (const nic of vm.nics) next = withoutNic(next, nic.mac);
      await ops.record.commit(next);
    }
  }
  for (const network of ops.record.state.networks) {
    if (!keepIds.has(network.networkId) && nicsOnNetwork(ops.record.state, network.networkId).length === 0) {
      await ops.removeNetwork(network.networkId).catch((error) => ops.log.warn({ err: error, network: network.networkId }, "network kept"));
    }
  }
  return ops.reconcile();
}

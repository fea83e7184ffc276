import type { InterfaceName, Mac } from "../addressing/index.js";
import { V6Error } from "../errors.js";
import type { Hypervisor } from "../hypervisor/hypervisor.js";
import type { DesiredRecord } from "./desired-record.js";
import { type DesiredNetwork, type DesiredNic, findNetwork, findNic, withNic } from "./desired-state.js";
import type { GuestPorts } from "./guest-ports.js";
import type { DeployVmInput } from "./inputs.js";

/** What vm.deploy needs of the agent core. */
export interface DeployOperations {
  record: DesiredRecord;
  ports: GuestPorts;
  hypervisor: Hypervisor;
  deviceFor(mac: Mac): InterfaceName | undefined;
}

/**
 * vm.deploy, the caller holding the VM's lock: the NICs become desired, each NIC's rules go in
 * under the device name the agent chose, then the hypervisor defines and starts the VM. If the
 * VM cannot be made, the desired state goes back and the rules of ports never made go again.
 */
export async function deployVm(ops: DeployOperations, input: DeployVmInput, nics: readonly DesiredNic[]): Promise<void> {
  const { record, ports } = ops;
  for (const [index, nic] of nics.entries()) {
    const owner = findNic(record.state, nic.mac);
    if (owner !== undefined && owner.vm.uuid !== input.uuid) {
      throw new V6Error("conflict", `MAC ${nic.mac} already belongs to VM ${owner.vm.uuid}`, { field: `params.nics[${index}].mac` });
    }
  }
  const devices = nics.map((nic) => {
    const device = ops.deviceFor(nic.mac);
    if (device === undefined) throw new V6Error("not_implemented", "this hypervisor creates VMs itself; vm.deploy is not offered here");
    return device;
  });
  const previous = record.state;
  let next = record.state;
  for (const nic of nics) next = withNic(next, input.uuid, nic);
  await record.commit(next);
  const pending = nics.map((nic, index) => ({
    vmUuid: input.uuid,
    mac: nic.mac,
    device: devices[index] as InterfaceName,
    bridge: (findNetwork(record.state, nic.networkId) as DesiredNetwork).bridge,
  }));
  try {
    for (const port of pending) await ports.protectPending(record.state, port);
    const { uuid, name, memoryMiB, vcpus, boot } = input;
    const specs = pending.map((port, index) => ({ bridge: port.bridge, mac: port.mac, device: port.device, model: nics[index]?.model }));
    await ops.hypervisor.deployVm({ uuid, name, memoryMiB, vcpus, boot, nics: specs });
  } catch (error) {
    await record.commit(previous);
    for (const port of pending) await ports.abandonPending(port.device);
    throw error;
  } finally {
    for (const port of pending) ports.removePending(port.device);
  }
}

import { describe, expect, it } from "vitest";
import type { XapiObject } from "xen-api";
import type { HypervisorEvent } from "../../../../src/hypervisor/hypervisor.js";
import { VmEventTracker } from "../../../../src/hypervisor/xenserver/vm-events.js";

const VM_UUID = "5e0c1d2a-0000-4000-8000-00000000000a";

function vm(fields: { power_state: string; domid: number }): XapiObject {
  return {
    $id: VM_UUID,
    $ref: "OpaqueRef:vm",
    $type: "VM",
    uuid: VM_UUID,
    is_a_template: false,
    is_control_domain: false,
    is_a_snapshot: false,
    VIFs: ["OpaqueRef:vif0"],
    ...fields,
  };
}

function vif(attached: boolean): XapiObject {
  return {
    $id: "vif0-uuid",
    $ref: "OpaqueRef:vif0",
    $type: "VIF",
    uuid: "vif0-uuid",
    VM: "OpaqueRef:vm",
    device: "0",
    MAC: "52:54:00:00:00:0a",
    currently_attached: attached,
  };
}

function tracker(): { events: HypervisorEvent[]; tracker: VmEventTracker } {
  const events: HypervisorEvent[] = [];
  return { events, tracker: new VmEventTracker((event) => events.push(event)) };
}

describe("VmEventTracker", () => {
  it("reports a start with the VIF's dom0 device, a reboot as domid-changed, and a stop", () => {
    const { events, tracker: t } = tracker();
    t.prime([vm({ power_state: "Halted", domid: -1 }), vif(false)]);
    expect(events).toEqual([]);

    t.update([vm({ power_state: "Running", domid: 3 }), vif(true)]);
    expect(events.splice(0)).toEqual([
      { type: "vm-started", uuid: VM_UUID },
      { type: "nic-added", uuid: VM_UUID, mac: "52:54:00:00:00:0a", device: "vif3.0" },
    ]);

    // A reboot seen as one coalesced update: same power state, new domain.
    t.update([vm({ power_state: "Running", domid: 4 })]);
    expect(events.splice(0)).toEqual([{ type: "domid-changed", uuid: VM_UUID, domainId: 4 }]);

    t.update([vm({ power_state: "Halted", domid: -1 }), vif(false)]);
    expect(events.splice(0)).toEqual([
      { type: "vm-stopped", uuid: VM_UUID },
      { type: "nic-removed", uuid: VM_UUID, mac: "52:54:00:00:00:0a", device: "vif4.0" },
    ]);

    // Started again: a new domain after a stop is a new set of device names too.
    t.update([vm({ power_state: "Running", domid: 9 }), vif(true)]);
    expect(events.splice(0)).toEqual([
      { type: "vm-started", uuid: VM_UUID },
      { type: "domid-changed", uuid: VM_UUID, domainId: 9 },
      { type: "nic-added", uuid: VM_UUID, mac: "52:54:00:00:00:0a", device: "vif9.0" },
    ]);

    t.remove(["vif0-uuid", VM_UUID]);
    expect(events.splice(0)).toEqual([
      { type: "nic-removed", uuid: VM_UUID, mac: "52:54:00:00:00:0a", device: "vif9.0" },
      { type: "vm-undefined", uuid: VM_UUID },
    ]);
  });

  it("ignores dom0 and templates", () => {
    const { events, tracker: t } = tracker();
    t.update([{ ...vm({ power_state: "Running", domid: 0 }), is_control_domain: true }]);
    t.update([{ ...vm({ power_state: "Halted", domid: -1 }), $ref: "OpaqueRef:t", is_a_template: true }]);
    expect(events).toEqual([]);
  });
});

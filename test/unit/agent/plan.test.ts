import { describe, expect, it } from "vitest";
import { parseInterfaceName, parseIpv6Network, parseMac } from "../../../src/addressing/index.js";
import { type DesiredState, parseDesiredState, withNic, withoutNic } from "../../../src/agent/desired-state.js";
import { observedPorts, planFirewall } from "../../../src/agent/plan.js";
import { allVifReports, vmVifReports } from "../../../src/agent/vif-report.js";
import type { VmInfo } from "../../../src/hypervisor/hypervisor.js";
import { tapNameForMac } from "../../../src/hypervisor/kvm/tap-name.js";

const macA = parseMac("52:54:00:00:00:0a");
const macB = parseMac("52:54:00:00:00:0b");
const macX = parseMac("52:54:00:00:00:99");
const vmA = "11111111-1111-4111-8111-111111111111";
const vmX = "99999999-9999-4999-8999-999999999999";

function state(): DesiredState {
  const base: DesiredState = {
    networks: [
      {
        networkId: "net-1",
        network: parseIpv6Network("2001:db8:1:1::/64"),
        bridge: parseInterfaceName("v6br-net1"),
        trustedPorts: [parseInterfaceName("eth1")],
      },
    ],
    vms: [],
  };
  return withNic(base, vmA, { networkId: "net-1", mac: macA, ipv6: ["2001:db8:1:1::a"], ipv4: [] });
}

function vm(uuid: string, nics: VmInfo["nics"], vmState: VmInfo["state"] = "running"): VmInfo {
  return { uuid, name: uuid.slice(0, 8), state: vmState, nics };
}

describe("planFirewall", () => {
  it("protects a known NIC with its assigned address and an unknown NIC on a managed bridge with its link-local only", () => {
    const vms = [
      vm(vmA, [{ mac: macA, device: tapNameForMac(macA), bridge: "v6br-net1", model: "virtio" }]),
      vm(vmX, [
        { mac: macX, device: parseInterfaceName("vnet7"), bridge: "v6br-net1", model: "virtio" },
        { mac: macB, device: parseInterfaceName("vnet8"), bridge: "virbr0", model: "virtio" },
      ]),
    ];
    const plan = planFirewall(state(), observedPorts(state(), vms), []);
    expect(plan.bridges).toEqual([{ name: "v6br-net1", trustedPorts: ["eth1"] }]);
    expect(plan.ports).toEqual([
      {
        device: "v652540000000a",
        bridge: "v6br-net1",
        mac: macA,
        linkLocals: ["fe80::5054:ff:fe00:a"],
        ipv6: ["2001:db8:1:1::a"],
        ipv4: [],
      },
      { device: "vnet7", bridge: "v6br-net1", mac: macX, linkLocals: ["fe80::5054:ff:fe00:99"], ipv6: [], ipv4: [] },
    ]);
  });

  it("gives every bridge the guest port patterns of a hypervisor that names ports itself (XenServer's vif*/tap*)", () => {
    expect(planFirewall(state(), [], [], ["vif*", "tap*"]).bridges).toEqual([
      { name: "v6br-net1", trustedPorts: ["eth1"], guestPortPatterns: ["vif*", "tap*"] },
    ]);
  });

  it("guards the uplink of a network that names its router: its MAC, link-local, M flag and /64 unless told otherwise", () => {
    const named = parseDesiredState(
      JSON.parse(
        JSON.stringify({
          ...state(),
          networks: state().networks.map((n) => ({ ...n, router: { mac: "52:54:00:aa:00:01", linkLocal: "fe80::1" } })),
        }),
      ),
    );
    expect(planFirewall(named, [], []).bridges[0]?.router).toEqual({
      mac: "52:54:00:aa:00:01",
      linkLocal: "fe80::1",
      requireManagedFlag: true,
      prefix: "2001:db8:1:1::/64",
    });
    const loose = parseDesiredState(
      JSON.parse(
        JSON.stringify({
          ...state(),
          networks: state().networks.map((n) => ({
            ...n,
            router: { mac: "52:54:00:aa:00:01", linkLocal: "fe80::1", onlyNetworkPrefix: false },
          })),
        }),
      ),
    );
    expect(planFirewall(loose, [], []).bridges[0]?.router).toEqual({
      mac: "52:54:00:aa:00:01",
      linkLocal: "fe80::1",
      requireManagedFlag: true,
    });
    expect(planFirewall(state(), [], []).bridges[0]?.router).toBeUndefined();
  });

  it("ignores stopped VMs and NICs without a device, but keeps pending ports", () => {
    const vms = [vm(vmA, [{ mac: macA, device: tapNameForMac(macA), bridge: "v6br-net1", model: "virtio" }], "stopped")];
    expect(planFirewall(state(), observedPorts(state(), vms), []).ports).toEqual([]);
    const pending = [{ vmUuid: vmA, mac: macA, device: tapNameForMac(macA), bridge: "v6br-net1" }];
    expect(planFirewall(state(), [], pending).ports.map((p) => [p.device, p.ipv6])).toEqual([["v652540000000a", ["2001:db8:1:1::a"]]]);
  });

  it("does not grant a NIC's addresses on a bridge other than its network's", () => {
    const other: DesiredState = {
      ...state(),
      networks: [
        ...state().networks,
        { networkId: "net-2", network: parseIpv6Network("2001:db8:1:2::/64"), bridge: parseInterfaceName("v6br-net2"), trustedPorts: [] },
      ],
    };
    const vms = [vm(vmA, [{ mac: macA, device: tapNameForMac(macA), bridge: "v6br-net2", model: "virtio" }])];
    expect(planFirewall(other, observedPorts(other, vms), []).ports[0]?.ipv6).toEqual([]);
  });
});

describe("VIF reports", () => {
  it("reports desired NICs as detached until seen, observed ones as protected, with DUID-LL and link-local", () => {
    expect(allVifReports(state(), [])).toEqual([
      {
        vmUuid: vmA,
        networkId: "net-1",
        mac: macA,
        duidLL: "00:03:00:01:52:54:00:00:00:0a",
        linkLocal: "fe80::5054:ff:fe00:a",
        bridge: "v6br-net1",
        ipv6: ["2001:db8:1:1::a"],
        state: "detached",
      },
    ]);
    const observed = [{ vmUuid: vmA, mac: macA, device: tapNameForMac(macA), bridge: "v6br-net1" }];
    const unknown = [{ vmUuid: vmX, mac: macX, device: parseInterfaceName("vnet7"), bridge: "v6br-net1" }];
    expect(allVifReports(state(), [...observed, ...unknown]).map((r) => [r.mac, r.state, r.device, r.networkId])).toEqual([
      [macA, "protected", "v652540000000a", "net-1"],
      [macX, "protected", "vnet7", "net-1"],
    ]);
  });
});

describe("one VM's VIF reports", () => {
  it("are the host's reports of that VM: desired NICs (seen or not), unknown ports, a port whose MAC another VM wants", () => {
    const desired = withNic(state(), vmA, { networkId: "net-1", mac: macB, ipv6: [], ipv4: [] });
    const observed = [
      { vmUuid: vmA, mac: macA, device: tapNameForMac(macA), bridge: "v6br-net1" },
      { vmUuid: vmX, mac: macX, device: parseInterfaceName("vnet7"), bridge: "v6br-net1" },
      // macB is wanted on vmA but shows up on vmX: the host reports it once, as vmA's NIC.
      { vmUuid: vmX, mac: macB, device: parseInterfaceName("vnet8"), bridge: "v6br-net1" },
    ];
    const byMac = new Map(observed.map((port) => [port.mac as string, port]));
    const host = allVifReports(desired, observed);
    for (const uuid of [vmA, vmX, "00000000-0000-4000-8000-000000000000"]) {
      const own = observed.filter((port) => port.vmUuid === uuid);
      expect(vmVifReports(desired, uuid, byMac, own)).toEqual(host.filter((report) => report.vmUuid === uuid));
    }
    expect(vmVifReports(desired, vmA, byMac, []).map((report) => [report.mac, report.state, report.device])).toEqual([
      [macA, "protected", tapNameForMac(macA)],
      [macB, "protected", "vnet8"],
    ]);
  });
});

describe("desired state", () => {
  it("moves a MAC between VMs and drops VMs without NICs", () => {
    const moved = withNic(state(), vmX, { networkId: "net-1", mac: macA, ipv6: [], ipv4: [] });
    expect(moved.vms.map((v) => v.uuid)).toEqual([vmX]);
    expect(withoutNic(moved, macA).vms).toEqual([]);
  });

  it("round-trips through JSON and re-validates every field", () => {
    const text = JSON.stringify(state());
    expect(parseDesiredState(JSON.parse(text))).toEqual(state());
    const tampered = JSON.parse(text);
    tampered.networks[0].bridge = "br0;reboot";
    expect(() => parseDesiredState(tampered)).toThrow(/state\.networks\[0\]\.bridge: .*contains ";"/);
    const outside = JSON.parse(text);
    outside.vms[0].nics[0].ipv6 = ["2001:db8:9::1"];
    expect(() => parseDesiredState(outside)).toThrow(/state\.vms\[0\]\.nics\[0\]\.ipv6\[0\]: .*outside the network/);
    const wide = JSON.parse(text);
    wide.networks[0].network.cidr = "2001:db8::/48";
    expect(() => parseDesiredState(wide)).toThrow(/\/48 is not allowed/);
  });
});

describe("tapNameForMac", () => {
  it("is 14 bytes, deterministic and distinct per MAC", () => {
    expect(tapNameForMac(macA)).toBe("v652540000000a");
    expect(tapNameForMac(macA)).toHaveLength(14);
    expect(tapNameForMac(macB)).not.toBe(tapNameForMac(macA));
  });
});

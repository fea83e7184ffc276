import { describe, expect, it } from "vitest";
import {
  assertBridgeBackend,
  networkBackendOf,
  parseSharedNetworkRequest,
  parseVifDeviceName,
  vifDeviceName,
} from "../../../../src/hypervisor/xenserver/index.js";
import type { HostRecord } from "../../../../src/hypervisor/xenserver/records.js";

const host = (backend?: string): HostRecord => ({
  uuid: "9a1c0e5e-0000-4000-8000-000000000001",
  name_label: "h",
  hostname: "h1",
  software_version: backend === undefined ? {} : { network_backend: backend },
  API_version_major: 2,
  API_version_minor: 21,
  PIFs: [],
});

describe("dom0 device names", () => {
  it("are vif<domid>.<device> and tap<domid>.<device>", () => {
    expect(vifDeviceName(7, "0")).toBe("vif7.0");
    expect(vifDeviceName(12345, 3, "emulated")).toBe("tap12345.3");
    expect(parseVifDeviceName("vif7.2")).toEqual({ kind: "paravirtual", domid: 7, device: 2 });
    expect(parseVifDeviceName("tap3.0")).toEqual({ kind: "emulated", domid: 3, device: 0 });
    expect(parseVifDeviceName("vnet0")).toBeUndefined();
  });

  it("do not exist for a halted VM", () => {
    expect(() => vifDeviceName(-1, "0")).toThrow(/not running/);
  });
});

describe("network backend detection", () => {
  it("accepts the Linux bridge backend", () => {
    expect(networkBackendOf(host("bridge"))).toBe("bridge");
    expect(() => assertBridgeBackend(host("bridge"))).not.toThrow();
  });

  it("refuses Open vSwitch, and a host that does not say (Open vSwitch is XenServer's default)", () => {
    expect(() => assertBridgeBackend(host("openvswitch"))).toThrow(/Open vSwitch network backend.*refuses to run/);
    expect(networkBackendOf(host())).toBe("openvswitch");
    expect(() => assertBridgeBackend(host())).toThrow(
      expect.objectContaining({ code: "not_implemented", field: "host.software_version.network_backend" }),
    );
  });
});

describe("shared network requests", () => {
  it("take a /64, a VLAN id 1–4094 and a safe uplink name", () => {
    expect(parseSharedNetworkRequest({ prefix: "2001:db8:7:1::/64", vlan: 4094, uplink: "eth1" })).toEqual({
      prefix: { prefix: "2001:db8:7:1::", length: 64, cidr: "2001:db8:7:1::/64" },
      vlan: 4094,
      uplink: "eth1",
    });
    expect(() => parseSharedNetworkRequest({ prefix: "2001:db8::/48" })).toThrow(/prefix: prefix length \/48 is not allowed/);
    expect(() => parseSharedNetworkRequest({ prefix: "2001:db8:7:1::/64", vlan: 4095 })).toThrow(/vlan: VLAN id 4095 is out of range/);
    expect(() => parseSharedNetworkRequest({ prefix: "2001:db8:7:1::/64", vlan: 0 })).toThrow(/vlan:/);
    expect(() => parseSharedNetworkRequest({ prefix: "2001:db8:7:1::/64", uplink: "eth0 up" })).toThrow(/uplink:/);
  });
});

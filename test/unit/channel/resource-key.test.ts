import { describe, expect, it } from "vitest";
import { defaultResourceKey, EXCLUSIVE } from "../../../src/channel/index.js";

describe("defaultResourceKey", () => {
  const vm = "6f1c2a3e-8d4b-4c1e-9a7f-0b1c2d3e4f50";
  it("serialises per VM and per network, and makes state.sync exclusive", () => {
    expect(defaultResourceKey("vm.stop", { uuid: vm })).toBe(`vm:${vm}`);
    expect(defaultResourceKey("nic.plug", { vmUuid: vm, networkId: "n1", mac: "52:54:00:00:00:01" })).toEqual([`vm:${vm}`, "network:n1"]);
    expect(defaultResourceKey("nic.unplug", { vmUuid: vm, mac: "52:54:00:00:00:01" })).toBe(`vm:${vm}`);
    expect(defaultResourceKey("network.ensure", { networkId: "n1", prefix: "2001:db8:1:1::/64" })).toBe("network:n1");
    expect(defaultResourceKey("state.sync", { networks: [], vms: [] })).toBe(EXCLUSIVE);
    expect(defaultResourceKey("vm.list", {})).toBeUndefined();
  });
});

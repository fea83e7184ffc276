import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../../src/errors.js";
import { parseParams, RPC_ERRORS, toRpcError } from "../../../src/protocol/index.js";

const VM = "6f1c2a3e-8d4b-4c1e-9a7f-0b1c2d3e4f50";

function fieldOf(run: () => unknown): { field: string | undefined; message: string } {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    return { field: (error as InvalidArgumentError).field, message: (error as Error).message };
  }
  throw new Error("expected an InvalidArgumentError");
}

describe("parseParams", () => {
  it("canonicalises MACs, prefixes and addresses", () => {
    const params = parseParams("network.ensure", {
      networkId: "n1",
      prefix: "2001:DB8:1:1:0::/64",
      gateway: "2001:db8:1:1:0:0:0:1",
      vlan: 100,
    });
    expect(params).toEqual({ networkId: "n1", prefix: "2001:db8:1:1::/64", gateway: "2001:db8:1:1::1", vlan: 100 });
    expect(parseParams("nic.unplug", { vmUuid: VM, mac: "52:54:00:AB:CD:EF" }).mac).toBe("52:54:00:ab:cd:ef");
  });

  it("takes a network's router (MAC and link-local canonicalised) and refuses one that is not link-local", () => {
    const params = parseParams("network.ensure", {
      networkId: "n1",
      prefix: "2001:db8:1:1::/64",
      router: { mac: "52:54:00:AA:00:01", linkLocal: "FE80::1", requireManagedFlag: false },
    });
    expect(params.router).toEqual({ mac: "52:54:00:aa:00:01", linkLocal: "fe80::1", requireManagedFlag: false });
    const failure = fieldOf(() =>
      parseParams("network.ensure", {
        networkId: "n1",
        prefix: "2001:db8:1:1::/64",
        router: { mac: "52:54:00:aa:00:01", linkLocal: "2001:db8:1:1::1" },
      }),
    );
    expect(failure.field).toBe("params.router.linkLocal");
    expect(
      fieldOf(() => parseParams("network.ensure", { networkId: "n1", prefix: "2001:db8:1:1::/64", router: { mac: "52:54:00:aa:00:01" } }))
        .field,
    ).toBe("params.router.linkLocal");
  });

  it("refuses a /48 with the addressing module's message naming /48 and /64 and the field path", () => {
    const failure = fieldOf(() => parseParams("network.ensure", { networkId: "n1", prefix: "2001:db8::/48" }));
    expect(failure.field).toBe("params.prefix");
    expect(failure.message).toMatch(/\/48/);
    expect(failure.message).toMatch(/\/64/);
    const rpc = toRpcError(new InvalidArgumentError("params.prefix", "x"));
    expect(rpc).toEqual({
      code: RPC_ERRORS.invalidParams,
      message: "params.prefix: x",
      data: { reason: "invalid_argument", field: "params.prefix" },
    });
  });

  it.each([
    ["missing field", "network.ensure", { networkId: "n1" }, "params.prefix", /required field is missing/],
    ["extra field", "network.ensure", { networkId: "n1", prefix: "2001:db8:1:1::/64", colour: "red" }, "params.colour", /unknown field/],
    ["wrong type", "network.ensure", { networkId: "n1", prefix: "2001:db8:1:1::/64", vlan: "ten" }, "params.vlan", /integer/],
    ["VLAN out of range", "network.ensure", { networkId: "n1", prefix: "2001:db8:1:1::/64", vlan: 4095 }, "params.vlan", /4094/],
    [
      "gateway outside",
      "network.ensure",
      { networkId: "n1", prefix: "2001:db8:1:1::/64", gateway: "2001:db8:9::1" },
      "params.gateway",
      /outside/,
    ],
    ["bad MAC", "nic.unplug", { vmUuid: VM, mac: "zz:54:00:12:34:56" }, "params.mac", /not a MAC address/],
    ["multicast MAC", "nic.unplug", { vmUuid: VM, mac: "01:00:5e:00:00:01" }, "params.mac", /multicast/],
    [
      "nested MAC",
      "vm.deploy",
      {
        uuid: VM,
        name: "g1",
        memoryMiB: 64,
        vcpus: 1,
        boot: { kind: "disk", path: "/d.img" },
        nics: [{ networkId: "n", mac: "52:54:00:00:00:1" }],
      },
      "params.nics[0].mac",
      /not a MAC address/,
    ],
    [
      "duplicate MAC",
      "vm.deploy",
      {
        uuid: VM,
        name: "g1",
        memoryMiB: 64,
        vcpus: 1,
        boot: { kind: "disk", path: "/d.img" },
        nics: [
          { networkId: "n", mac: "52:54:00:00:00:01" },
          { networkId: "n", mac: "52:54:00:00:00:01" },
        ],
      },
      "params.nics[1].mac",
      /already used/,
    ],
    [
      "sync: unknown network",
      "state.sync",
      { networks: [], vms: [{ uuid: VM, nics: [{ networkId: "x", mac: "52:54:00:00:00:01" }] }] },
      "params.vms[0].nics[0].networkId",
      /not in params.networks/,
    ],
    [
      "sync: /56",
      "state.sync",
      { networks: [{ networkId: "n", prefix: "2001:db8:1::/56" }], vms: [] },
      "params.networks[0].prefix",
      /\/56.*\/64/,
    ],
  ] as const)("%s names %s", (_name, method, params, field, message) => {
    const failure = fieldOf(() => parseParams(method, params));
    expect(failure.field).toBe(field);
    expect(failure.message).toMatch(message);
  });

  it("does not modify its input", () => {
    const input = { vmUuid: VM, mac: "52:54:00:AB:CD:EF" };
    parseParams("nic.unplug", input);
    expect(input.mac).toBe("52:54:00:AB:CD:EF");
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type InterfaceName, parseVlanId } from "../../../src/addressing/index.js";
import { bridgeNameFor, vlanInterfaceName } from "../../../src/hostnet/bridge-name.js";

describe("bridge and VLAN interface names", () => {
  it("names a tagged network's bridge after its VLAN", () => {
    expect(bridgeNameFor({ id: "net-1", vlan: parseVlanId(100) })).toBe("v6vlan100");
    expect(bridgeNameFor({ id: "other", vlan: parseVlanId(4094) })).toBe("v6vlan4094");
  });

  it("names an untagged network's bridge deterministically from its id, within 15 bytes", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), (id) => {
        const name = bridgeNameFor({ id });
        expect(Buffer.byteLength(name)).toBeLessThanOrEqual(15);
        expect(name).toMatch(/^v6net[0-9a-f]{10}$/);
        expect(bridgeNameFor({ id })).toBe(name);
      }),
    );
    expect(bridgeNameFor({ id: "a" })).not.toBe(bridgeNameFor({ id: "b" }));
    expect(() => bridgeNameFor({ id: "" })).toThrow(/network.id/);
  });

  it("uses <uplink>.<vlan> when it fits and a hashed name when it does not", () => {
    expect(vlanInterfaceName("eth0" as InterfaceName, parseVlanId(100))).toBe("eth0.100");
    const long = vlanInterfaceName("enp129s0f1np1" as InterfaceName, parseVlanId(4094));
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(15);
    expect(long).toMatch(/^v6u4094\.[0-9a-f]+$/);
    expect(vlanInterfaceName("enp129s0f1np0" as InterfaceName, parseVlanId(4094))).not.toBe(long);
  });
});

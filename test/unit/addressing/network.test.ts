import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  parseAddressInNetwork,
  parseInterfaceName,
  parseIpv6Address,
  parseIpv6Network,
  parseVlanId,
} from "../../../src/addressing/index.js";

describe("parseIpv6Network", () => {
  it("accepts a /64 and normalises it", () => {
    expect(parseIpv6Network("2001:DB8:1:1::/64")).toEqual({ prefix: "2001:db8:1:1::", length: 64, cidr: "2001:db8:1:1::/64" });
    expect(parseIpv6Network("2001:0db8:0000:0001:0000:0000:0000:0000/64").cidr).toBe("2001:db8:0:1::/64");
    expect(parseIpv6Network("fd00:1:2:3::/64").cidr).toBe("fd00:1:2:3::/64");
  });

  it.each([
    ["2001:db8::/48", /\/48 is not allowed.*exactly \/64/],
    ["2001:db8:1:1::/65", /\/65 is not allowed.*exactly \/64/],
    ["2001:db8:1:1::/128", /\/128 is not allowed/],
    ["2001:db8:1:1::/129", /out of range/],
    ["2001:db8:1:1::", /no prefix length/],
    ["2001:db8:1:1::/x", /malformed prefix length/],
    ["2001:db8:1:1::5/64", /host bits set; the network is 2001:db8:1:1::\/64/],
    ["ff02::/64", /multicast/],
    ["fe80::/64", /link-local/],
    ["::/64", /unspecified and loopback/],
    ["192.0.2.0/24", /not an IPv6 address/],
    ["2001:db8::g/64", /not an IPv6 address/],
    ["fe80::%eth0/64", /zone index/],
  ])("refuses %s", (input, message) => {
    expect(() => parseIpv6Network(input, "network.prefix")).toThrow(message);
    expect(() => parseIpv6Network(input, "network.prefix")).toThrow(/^network\.prefix: /);
  });

  it("names the given length for every length but 64", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 128 }).filter((n) => n !== 64),
        (length) => {
          expect(() => parseIpv6Network(`2001:db8::/${length}`)).toThrow(`/${length}`);
        },
      ),
    );
  });
});

describe("parseAddressInNetwork", () => {
  const network = parseIpv6Network("2001:db8:1:1::/64");

  it("accepts addresses inside the /64", () => {
    expect(parseAddressInNetwork("2001:db8:1:1::1", network)).toBe("2001:db8:1:1::1");
    expect(parseAddressInNetwork("2001:DB8:1:1:5054:ff:fe12:3456", network)).toBe("2001:db8:1:1:5054:ff:fe12:3456");
  });

  it.each([
    ["2001:db8:1:2::1", /outside the network 2001:db8:1:1::\/64/],
    ["2001:db8:1:1::", /subnet-router anycast/],
    ["2001:db8:1:1:fdff:ffff:ffff:ff80", /reserved subnet anycast/],
    ["2001:db8:1:1:fdff:ffff:ffff:ffff", /reserved subnet anycast/],
    ["2001:db8:1:1::/64", /is a prefix/],
    ["not-an-address", /not an IPv6 address/],
  ])("refuses %s", (input, message) => {
    expect(() => parseAddressInNetwork(input, network, "gateway")).toThrow(message);
  });

  it("accepts every non-anycast interface id and round-trips the text form", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 4, maxLength: 4 }), (groups) => {
        fc.pre(
          groups.some((g) => g !== 0) &&
            !(groups[0] === 0xfdff && groups[1] === 0xffff && groups[2] === 0xffff && (groups[3] as number) >= 0xff80),
        );
        const text = `2001:db8:1:1:${groups.map((g) => g.toString(16)).join(":")}`;
        const parsed = parseAddressInNetwork(text, network);
        expect(parseIpv6Address(parsed)).toBe(parsed);
        expect(parseAddressInNetwork(parsed.toUpperCase(), network)).toBe(parsed);
      }),
    );
  });
});

describe("parseVlanId", () => {
  it.each([1, 100, 4094, "42"])("accepts %s", (input) => {
    expect(parseVlanId(input)).toBe(Number(input));
  });
  it.each([0, 4095, 5000, -1, 1.5, "0x10", "", null, "12 ; reboot"])("refuses %s", (input) => {
    expect(() => parseVlanId(input, "vlan")).toThrow(/^vlan: /);
  });
  it("names the range", () => {
    expect(() => parseVlanId(5000)).toThrow(/1 to 4094/);
  });
});

describe("parseInterfaceName", () => {
  it.each(["eth0", "vnet12", "v6-br-1a2b3c4d", "vif3.0", "tap3.0", "a_b", "123456789012345"])("accepts %s", (name) => {
    expect(parseInterfaceName(name)).toBe(name);
  });

  it.each([
    ["", /empty/],
    ["1234567890123456", /16 bytes; Linux allows at most 15/],
    ["br0;reboot", /contains ";"/],
    ["br0 x", /contains " "/],
    ["br/0", /contains "\/"/],
    ["br:0", /contains ":"/],
    ["$(id)", /contains "\$"/],
    ["br`x`", /contains "`"/],
    ["eth0\n", /contains "\\n"/],
    ["-i", /must not start with '-'/],
    [".", /not a valid interface name/],
    ["..", /not a valid interface name/],
    ["éééééééé", /16 bytes/],
  ])("refuses %j", (name, message) => {
    expect(() => parseInterfaceName(name, "device")).toThrow(message);
  });
});

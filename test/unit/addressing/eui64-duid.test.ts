import fc from "fast-check";
import { Address6 } from "ip-address";
import { describe, expect, it } from "vitest";
import {
  dhcpHostLine,
  duidLl,
  duidLlBytes,
  eui64Global,
  eui64InterfaceId,
  eui64LinkLocal,
  parseIpv6Network,
  parseMac,
} from "../../../src/addressing/index.js";

describe("EUI-64 (RFC 4291 Appendix A)", () => {
  it("derives the link-local address of the issue's vector", () => {
    expect(eui64LinkLocal(parseMac("52:54:00:12:34:56"))).toBe("fe80::5054:ff:fe12:3456");
  });

  it("inverts the universal/local bit both ways", () => {
    // RFC 4291 App. A: a universal MAC 34:56:78:9a:bc:de gives 3656:78ff:fe9a:bcde.
    expect(eui64LinkLocal(parseMac("34:56:78:9a:bc:de"))).toBe("fe80::3656:78ff:fe9a:bcde");
    expect(eui64LinkLocal(parseMac("02:00:00:00:00:01"))).toBe("fe80::ff:fe00:1");
    expect(eui64LinkLocal(parseMac("52:54:00:00:00:42"))).toBe("fe80::5054:ff:fe00:42");
  });

  it("places the interface id inside a /64", () => {
    const network = parseIpv6Network("2001:db8:1:1::/64");
    expect(eui64Global(parseMac("52:54:00:12:34:56"), network)).toBe("2001:db8:1:1:5054:ff:fe12:3456");
    expect(eui64Global(parseMac("52:54:00:12:34:56"), parseIpv6Network("::1:0:0:0:0/64"))).toBe("::1:5054:ff:fe12:3456");
  });

  it("round-trips: the MAC is recoverable from any link-local it yields", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 6, maxLength: 6 }), (raw) => {
        raw[0] = (raw[0] as number) & 0xfe;
        fc.pre(raw.some((byte) => byte !== 0));
        const mac = parseMac(Array.from(raw, (b) => b.toString(16).padStart(2, "0")).join(":"));
        const bytes = new Address6(eui64LinkLocal(mac)).toByteArray();
        const id = bytes.slice(-8);
        expect(id[3]).toBe(0xff);
        expect(id[4]).toBe(0xfe);
        const recovered = [(id[0] as number) ^ 0x02, id[1], id[2], id[5], id[6], id[7]];
        expect(recovered).toEqual(Array.from(raw));
        expect(Array.from(eui64InterfaceId(mac))).toEqual(id);
      }),
    );
  });
});

describe("DUID-LL (RFC 8415 §11.4)", () => {
  it("is type 3, hardware type 1, then the MAC", () => {
    const mac = parseMac("52:54:00:12:34:56");
    expect(duidLl(mac)).toBe("00:03:00:01:52:54:00:12:34:56");
    expect(Array.from(duidLlBytes(mac))).toEqual([0, 3, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]);
  });

  it("ends with the MAC for every MAC", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 6, maxLength: 6 }), (raw) => {
        raw[0] = (raw[0] as number) & 0xfe;
        fc.pre(raw.some((byte) => byte !== 0));
        const mac = parseMac(Array.from(raw, (b) => b.toString(16).padStart(2, "0")).join(":"));
        expect(duidLl(mac)).toBe(`00:03:00:01:${mac}`);
        expect(duidLlBytes(mac).length).toBe(10);
      }),
    );
  });
});

describe("dnsmasq reservation", () => {
  it("keys the address by DUID-LL", () => {
    expect(dhcpHostLine(parseMac("52:54:00:12:34:56"), "2001:db8:1:1::10")).toBe(
      "dhcp-host=id:00:03:00:01:52:54:00:12:34:56,[2001:db8:1:1::10]",
    );
  });

  it("normalises the address and refuses garbage", () => {
    expect(dhcpHostLine(parseMac("52:54:00:12:34:56"), "2001:DB8:1:1:0:0:0:10")).toBe(
      "dhcp-host=id:00:03:00:01:52:54:00:12:34:56,[2001:db8:1:1::10]",
    );
    expect(() => dhcpHostLine(parseMac("52:54:00:12:34:56"), "2001:db8::1],bad")).toThrow(/not an IPv6 address/);
  });
});

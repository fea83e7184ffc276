import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseMac } from "../../../src/addressing/index.js";
import { isDuidLlOf, parseDhcpv6Message, parseDhcpv6Packet, parseDuid } from "../../../src/dhcp-observe/index.js";
import { bytes, concat, dhcpv6Message, iaNa, ipv6Udp, option } from "./packets.js";

const mac = parseMac("52:54:00:12:34:56");
const DUID_LL = bytes("00030001525400123456");
/** What Debian's dhclient makes: DUID-LLT, hardware type 1, a time, its MAC. */
const DUID_LLT = bytes("0001000132a2fcfa525400123456");

describe("a DHCPv6 client message in an IPv6 packet", () => {
  it("reads a Solicit's type, transaction id, DUID-LL and IAID", () => {
    const result = parseDhcpv6Packet(ipv6Udp(dhcpv6Message(1, 0xabcdef, [option(1, DUID_LL), option(8, bytes("0000")), iaNa(0x00123456)])));
    expect(result).toEqual({
      ok: true,
      message: {
        messageType: 1,
        messageName: "Solicit",
        transactionId: 0xabcdef,
        clientId: {
          type: 3,
          typeName: "DUID-LL",
          hex: "00:03:00:01:52:54:00:12:34:56",
          hardwareType: 1,
          linkLayerAddress: "52:54:00:12:34:56",
        },
        ias: [{ kind: "IA_NA", iaid: 0x00123456 }],
      },
    });
    expect(result.ok && result.message.clientId !== undefined && isDuidLlOf(result.message.clientId, mac)).toBe(true);
  });

  it("reads dhclient's DUID-LLT (and it is not the DUID-LL of the MAC inside it)", () => {
    const result = parseDhcpv6Packet(ipv6Udp(dhcpv6Message(1, 1, [option(1, DUID_LLT), iaNa(7)])));
    expect(result.ok).toBe(true);
    if (!result.ok || result.message.clientId === undefined) return;
    expect(result.message.clientId).toMatchObject({
      type: 1,
      typeName: "DUID-LLT",
      hardwareType: 1,
      time: 0x32a2fcfa,
      linkLayerAddress: "52:54:00:12:34:56",
    });
    expect(isDuidLlOf(result.message.clientId, mac)).toBe(false);
  });

  it("names DUID-EN (with its enterprise number), DUID-UUID and unknown types", () => {
    expect(parseDuid(bytes("0002000000090102"))).toMatchObject({ ok: true, duid: { typeName: "DUID-EN", enterpriseNumber: 9 } });
    expect(parseDuid(bytes(`0004${"11".repeat(16)}`))).toMatchObject({ ok: true, duid: { typeName: "DUID-UUID" } });
    expect(parseDuid(bytes("00090102"))).toMatchObject({ ok: true, duid: { type: 9, typeName: "DUID type 9" } });
  });

  it("walks hop-by-hop and destination options headers to the UDP header", () => {
    // Hop-by-hop (next: destination options), 8 bytes; destination options (next: UDP), 8 bytes.
    const extension = concat([Uint8Array.of(60, 0, 1, 4, 0, 0, 0, 0), Uint8Array.of(17, 0, 1, 4, 0, 0, 0, 0)]);
    const result = parseDhcpv6Packet(ipv6Udp(dhcpv6Message(3, 2, [option(1, DUID_LL)]), { nextHeader: 0, extensionHeaders: extension }));
    expect(result).toMatchObject({ ok: true, message: { messageName: "Request" } });
  });

  it.each([
    ["IPv4", () => Uint8Array.from({ length: 60 }, (_, i) => (i === 0 ? 0x45 : 0)), /IP version 4/],
    ["a short packet", () => new Uint8Array(39), /needs 40 bytes/],
    ["another UDP port", () => ipv6Udp(dhcpv6Message(1, 1, [option(1, DUID_LL)]), { destinationPort: 546 }), /UDP port 546/],
    ["TCP", () => ipv6Udp(dhcpv6Message(1, 1, [option(1, DUID_LL)]), { nextHeader: 6 }), /next header 6/],
    [
      "a fragment",
      () =>
        ipv6Udp(dhcpv6Message(1, 1, [option(1, DUID_LL)]), { nextHeader: 44, extensionHeaders: Uint8Array.of(17, 0, 0, 1, 0, 0, 0, 1) }),
      /fragment/,
    ],
    [
      "nine extension headers",
      () =>
        ipv6Udp(dhcpv6Message(1, 1, [option(1, DUID_LL)]), {
          nextHeader: 60,
          extensionHeaders: concat(Array.from({ length: 9 }, () => Uint8Array.of(60, 0, 1, 4, 0, 0, 0, 0))),
        }),
      /more than 8 extension headers/,
    ],
    ["an Advertise (a server's message)", () => ipv6Udp(dhcpv6Message(2, 1, [option(1, DUID_LL)])), /message type 2/],
    ["a Relay-forward", () => ipv6Udp(dhcpv6Message(12, 1, [])), /message type 12/],
    ["no client identifier", () => ipv6Udp(dhcpv6Message(1, 1, [iaNa(1)])), /Solicit without a client identifier/],
    ["two client identifiers", () => ipv6Udp(dhcpv6Message(1, 1, [option(1, DUID_LL), option(1, DUID_LLT)])), /two client identifiers/],
    ["a DUID of 131 bytes", () => ipv6Udp(dhcpv6Message(1, 1, [option(1, new Uint8Array(131))])), /131 bytes, more than 130/],
    ["a DUID of 2 bytes", () => ipv6Udp(dhcpv6Message(1, 1, [option(1, bytes("0003"))])), /needs 3 bytes/],
    [
      "a short IA_NA",
      () => ipv6Udp(dhcpv6Message(1, 1, [option(1, DUID_LL), option(3, new Uint8Array(11))])),
      /IA_NA needs 12 bytes, has 11/,
    ],
  ])("refuses %s", (_name, packet, reason) => {
    const result = parseDhcpv6Packet(packet());
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(reason);
  });

  it("refuses an option whose length runs past the message, and one cut in its header", () => {
    const message = dhcpv6Message(1, 1, [option(1, DUID_LL)]);
    const overrun = message.slice();
    overrun[7] = 200; // the client identifier claims 200 bytes
    expect(parseDhcpv6Message(overrun)).toEqual({ ok: false, reason: "option 1 claims 200 bytes, 10 are left" });
    expect(parseDhcpv6Message(concat([message, Uint8Array.of(0, 3)]))).toEqual({
      ok: false,
      reason: "truncated in an option header at byte 18",
    });
  });

  it("stops at the IPv6 payload length and the UDP length, not at the end of the copy", () => {
    // Trailing bytes past the UDP datagram (an Ethernet pad) are not options.
    const packet = concat([ipv6Udp(dhcpv6Message(1, 1, [option(1, DUID_LL)])), Uint8Array.of(0xff, 0xff, 0xff)]);
    expect(parseDhcpv6Packet(packet).ok).toBe(true);
  });
});

interface MessageSpec {
  type: number;
  xid: number;
  duid: Uint8Array;
  iaids: number[];
  filler: { code: number; data: Uint8Array }[];
}

describe("hostile input (property tests)", () => {
  const duidArbitrary = fc.uint8Array({ minLength: 3, maxLength: 130 });
  const messageArbitrary = fc.record({
    type: fc.constantFrom(1, 3, 4, 5, 6, 8, 9),
    xid: fc.integer({ min: 0, max: 0xffffff }),
    duid: duidArbitrary,
    iaids: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 12 }),
    filler: fc.array(fc.record({ code: fc.integer({ min: 5, max: 24 }), data: fc.uint8Array({ maxLength: 40 }) }), { maxLength: 6 }),
  });
  const build = (m: MessageSpec) =>
    ipv6Udp(dhcpv6Message(m.type, m.xid, [...m.filler.map((f) => option(f.code, f.data)), option(1, m.duid), ...m.iaids.map(iaNa)]));

  it("never throws on arbitrary bytes, and answers ok or a reason", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (raw) => {
        const result = parseDhcpv6Packet(raw);
        return result.ok ? result.message.clientId !== undefined || result.message.messageType === 11 : result.reason.length > 0;
      }),
      { numRuns: 5000 },
    );
  });

  it("never throws on arbitrary bytes behind a valid IPv6/UDP header", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1500 }), (payload) => {
        const result = parseDhcpv6Packet(ipv6Udp(payload));
        return typeof result.ok === "boolean";
      }),
      { numRuns: 5000 },
    );
  });

  it("reads back every well-formed message: its DUID, and its first eight IAIDs", () => {
    fc.assert(
      fc.property(messageArbitrary, (m) => {
        const result = parseDhcpv6Packet(build(m));
        expect(result.ok).toBe(true);
        if (!result.ok) return;
        expect(result.message.clientId?.hex).toBe(Array.from(m.duid, (b) => b.toString(16).padStart(2, "0")).join(":"));
        expect(result.message.transactionId).toBe(m.xid);
        expect(result.message.ias.map((ia) => ia.iaid)).toEqual(m.iaids.slice(0, 8));
      }),
    );
  });

  it("a message cut short anywhere (the copy range, a lying length) is refused or read as far as it is whole", () => {
    fc.assert(
      fc.property(messageArbitrary, fc.nat(), (m, cut) => {
        const whole = build(m);
        const at = 40 + 8 + (cut % Math.max(1, whole.length - 48));
        const result = parseDhcpv6Packet(whole.subarray(0, at));
        // Never more than the whole message held.
        if (result.ok) expect(result.message.ias.length).toBeLessThanOrEqual(Math.min(8, m.iaids.length));
      }),
    );
  });

  it("bogus option lengths anywhere never read past the message", () => {
    fc.assert(
      fc.property(messageArbitrary, fc.nat(), fc.integer({ min: 0, max: 0xffff }), (m, where, length) => {
        const packet = build(m).slice();
        const at = 48 + 4 + (where % Math.max(1, packet.length - 54));
        packet[at] = length >> 8;
        packet[at + 1] = length & 0xff;
        const result = parseDhcpv6Packet(packet);
        if (result.ok) expect(result.message.clientId?.hex.length ?? 0).toBeLessThanOrEqual(130 * 3);
      }),
    );
  });

  it("a 64 KiB message of 4,000 IA options is read in one pass, keeping eight IAs", () => {
    const result = parseDhcpv6Message(dhcpv6Message(1, 1, [option(1, DUID_LL), ...Array.from({ length: 4000 }, (_, i) => iaNa(i))]));
    expect(result.ok).toBe(true);
    if (result.ok) expect(result.message.ias.map((ia) => ia.iaid)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });
});

import { describe, expect, it } from "vitest";
import { parseMac } from "../../../src/addressing/index.js";
import { DhcpIdentityStore, DhcpObserver, type Dhcpv6ClientMessage, parseDhcpv6Message } from "../../../src/dhcp-observe/index.js";
import { bytes, dhcpv6Message, iaNa, ipv6Udp, option } from "./packets.js";

const macA = parseMac("52:54:00:00:00:0a");
const macB = parseMac("52:54:00:00:00:0b");
const llOf = (mac: string) => bytes(`00030001${mac.replaceAll(":", "")}`);
/** One DUID-LLT, as two guests cloned from one template send it. */
const template = bytes("0001000132a2fcfa5254000000ff");

function message(duid: Uint8Array, type = 1, iaid = 1): Dhcpv6ClientMessage {
  const result = parseDhcpv6Message(dhcpv6Message(type, 0x10, [option(1, duid), iaNa(iaid)]));
  if (!result.ok) throw new Error(result.reason);
  return result.message;
}

describe("the DHCPv6 identity store", () => {
  it("a VIF sending the DUID-LL of its MAC matches; one sending a DUID-LLT does not, from its first message", () => {
    const store = new DhcpIdentityStore();
    expect(store.record("vnet0", macA, message(llOf(macA)), 1000)).toMatchObject({ matches: true, duid: { typeName: "DUID-LL" } });
    const b = store.record("vnet1", macB, message(template, 1, 77), 1000);
    expect(b).toMatchObject({
      matches: false,
      expected: "00:03:00:01:52:54:00:00:00:0b",
      duid: { typeName: "DUID-LLT" },
      ias: [{ iaid: 77 }],
    });
    expect(store.mismatching().map((o) => o.device)).toEqual(["vnet1"]);
  });

  it("a DUID-LL of another MAC does not match", () => {
    const store = new DhcpIdentityStore();
    expect(store.record("vnet0", macA, message(llOf(macB)), 1)?.matches).toBe(false);
  });

  it("counts further messages with the same DUID and keeps the first and last time", () => {
    const store = new DhcpIdentityStore();
    store.record("vnet0", macA, message(llOf(macA)), 1000);
    store.record("vnet0", macA, message(llOf(macA), 3), 2000);
    expect(store.get("vnet0")).toMatchObject({ messages: 2, firstSeen: 1000, lastSeen: 2000, lastMessage: "Request" });
  });

  it("a new DUID, or a new MAC on the same device (another VM), starts over", () => {
    const store = new DhcpIdentityStore();
    store.record("vnet0", macA, message(template), 1000);
    store.record("vnet0", macA, message(llOf(macA)), 2000);
    expect(store.get("vnet0")).toMatchObject({ matches: true, messages: 1, firstSeen: 2000 });
    store.record("vnet0", macB, message(llOf(macA)), 3000);
    expect(store.get("vnet0")).toMatchObject({ mac: macB, matches: false, firstSeen: 3000 });
    expect(store.sharedDuids()).toEqual([]);
  });

  it("flags one DUID sent from two VIFs, and stops when one of them goes", () => {
    const store = new DhcpIdentityStore();
    store.record("vnet1", macB, message(template), 1);
    store.record("vnet0", macA, message(template), 1);
    store.record("vnet2", parseMac("52:54:00:00:00:0c"), message(llOf("52:54:00:00:00:0c")), 1);
    expect(store.sharedDuids()).toEqual([{ duid: "00:01:00:01:32:a2:fc:fa:52:54:00:00:00:ff", devices: ["vnet0", "vnet1"] }]);
    expect(store.sharing("vnet0")).toEqual(["vnet1"]);
    store.retain(new Set(["vnet0", "vnet2"]));
    expect(store.sharedDuids()).toEqual([]);
    expect(store.size).toBe(2);
    store.forget("vnet0");
    expect(store.list().map((o) => o.device)).toEqual(["vnet2"]);
  });

  it("keeps nothing of an Information-request without a client identifier", () => {
    const store = new DhcpIdentityStore();
    const result = parseDhcpv6Message(dhcpv6Message(11, 1, []));
    expect(result.ok && store.record("vnet0", macA, result.message, 1)).toBeUndefined();
    expect(store.size).toBe(0);
  });
});

describe("the observer, fed logged packets", () => {
  const packet = (device: string | undefined, payload: Uint8Array) => ({
    group: 547,
    family: 7,
    indevName: "br0",
    ...(device === undefined ? {} : { physindevName: device }),
    payload: Buffer.from(payload),
  });

  it("records by the bridge port a message entered, and counts what it cannot use", () => {
    const store = new DhcpIdentityStore();
    const seen: string[] = [];
    const observer = new DhcpObserver({
      group: 547,
      store,
      portMac: (device) => (device === "vnet0" ? macA : undefined),
      onObservation: (o) => seen.push(`${o.device} ${o.duid.typeName}`),
      now: () => 5,
    });
    observer.handle([
      packet("vnet0", ipv6Udp(dhcpv6Message(1, 1, [option(1, template)]))),
      packet("vnet9", ipv6Udp(dhcpv6Message(1, 1, [option(1, template)]))),
      packet("vnet0", bytes("deadbeef")),
      packet(undefined, ipv6Udp(dhcpv6Message(1, 1, [option(1, template)]))),
    ]);
    expect(seen).toEqual(["vnet0 DUID-LLT"]);
    expect(observer.stats()).toEqual({
      packets: 4,
      recorded: 1,
      refused: 1,
      unknownPort: 2,
      lastRefusal: "vnet0: an IPv6 header needs 40 bytes, got 4",
    });
    expect(store.get("vnet0")?.matches).toBe(false);
  });

  it("a throwing listener costs that one packet, not the batch", () => {
    const store = new DhcpIdentityStore();
    const observer = new DhcpObserver({
      group: 547,
      store,
      portMac: () => macA,
      onObservation: () => {
        throw new Error("listener bug");
      },
    });
    const solicit = packet("vnet0", ipv6Udp(dhcpv6Message(1, 1, [option(1, llOf(macA))])));
    expect(() => observer.handle([solicit, packet("vnet1", ipv6Udp(dhcpv6Message(1, 1, [option(1, llOf(macA))])))])).not.toThrow();
    expect(store.size).toBe(2);
    expect(observer.stats().lastRefusal).toBe("internal: listener bug");
  });
});

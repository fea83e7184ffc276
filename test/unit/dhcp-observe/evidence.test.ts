import { describe, expect, it } from "vitest";
import { parseMac } from "../../../src/addressing/index.js";
import {
  DhcpIdentityStore,
  type Dhcpv6ClientMessage,
  guestConfigHint,
  observedDuidOf,
  parseDhcpv6Message,
  parseSavedObservations,
  savedObservations,
} from "../../../src/dhcp-observe/index.js";
import { bytes, dhcpv6Message, iaNa, option } from "./packets.js";

const macA = parseMac("52:54:00:00:00:0a");
const macB = parseMac("52:54:00:00:00:0b");
const template = bytes("0001000132a2fcfa5254000000ff");

function message(duid: Uint8Array, iaid = 9): Dhcpv6ClientMessage {
  const result = parseDhcpv6Message(dhcpv6Message(1, 0x10, [option(1, duid), iaNa(iaid)]));
  if (!result.ok) throw new Error(result.reason);
  return result.message;
}

describe("observedDuid in vif.report", () => {
  it("says what the guest sends, its IAID, whether it matches, and who else sends it", () => {
    const store = new DhcpIdentityStore();
    expect(observedDuidOf(store, "vnet0")).toBeUndefined();
    store.record("vnet0", macA, message(template, 77), 1);
    store.record("vnet1", macB, message(template), 1);
    expect(observedDuidOf(store, "vnet0")).toEqual({
      duid: "00:01:00:01:32:a2:fc:fa:52:54:00:00:00:ff",
      type: 1,
      typeName: "DUID-LLT",
      iaid: 77,
      matchesDuidLL: false,
      sharedWith: [macB],
    });
    store.record("vnet1", macB, message(bytes(`00030001${macB.replaceAll(":", "")}`)), 2);
    expect(observedDuidOf(store, "vnet1")).toEqual({
      duid: `00:03:00:01:${macB}`,
      type: 3,
      typeName: "DUID-LL",
      iaid: 9,
      matchesDuidLL: true,
    });
    expect(observedDuidOf(store, "vnet0")?.sharedWith).toBeUndefined();
  });
});

describe("the guest-config hint", () => {
  it.each([
    [{ type: 1, duid: "00:01:00:01:32:a2:fc:fa:52:54:00:00:00:ff" }, /--os dhclient/],
    [{ type: 2, duid: "00:02:00:00:ab:11:33:bd:eb:00" }, /--os systemd-networkd/],
    [{ type: 2, duid: "00:02:00:00:00:09:01" }, /--help/],
    [{ type: 4, duid: `00:04:${"11:".repeat(15)}11` }, /--os networkmanager/],
    [{ type: 3, duid: "00:03:00:01:52:54:00:00:00:0c" }, /--help/],
  ])("%o -> %s", (duid, hint) => {
    expect(guestConfigHint(duid)).toMatch(hint);
  });
});

describe("the saved evidence", () => {
  it("round-trips through JSON, working out the match again", () => {
    const store = new DhcpIdentityStore();
    store.record("vnet0", macA, message(template), 1000);
    store.record("vnet1", macB, message(bytes(`00030001${macB.replaceAll(":", "")}`)), 2000);
    const restored = new DhcpIdentityStore();
    restored.restore(parseSavedObservations(JSON.parse(JSON.stringify(savedObservations(store)))));
    expect(restored.list()).toEqual(store.list());
  });

  it("a hand-edited 'matches' cannot make a DUID-LLT match", () => {
    const store = new DhcpIdentityStore();
    store.record("vnet0", macA, message(template), 1);
    const saved = JSON.parse(JSON.stringify(savedObservations(store)));
    saved[0].matches = true;
    saved[0].duid.typeName = "DUID-LL";
    const restored = new DhcpIdentityStore();
    restored.restore(parseSavedObservations(saved));
    expect(restored.get("vnet0")).toMatchObject({ matches: false, duid: { typeName: "DUID-LLT" } });
  });

  it.each([
    ["not an array", {}, /expected an array/],
    ["a bad device", [{ device: "", mac: macA, duid: { hex: "00:03:00:01" }, firstSeen: 1, lastSeen: 1, messages: 1 }], /device/],
    ["a bad DUID", [{ device: "vnet0", mac: macA, duid: { hex: "zz" }, firstSeen: 1, lastSeen: 1, messages: 1 }], /duid/],
    ["a bad MAC", [{ device: "vnet0", mac: "nope", duid: { hex: "00:03:00:01:52" }, firstSeen: 1, lastSeen: 1, messages: 1 }], /mac/],
    ["a bad count", [{ device: "vnet0", mac: macA, duid: { hex: "00:03:00:01:52" }, firstSeen: 1, lastSeen: 1, messages: -1 }], /messages/],
  ])("refuses %s", (_name, raw, error) => {
    expect(() => parseSavedObservations(raw)).toThrow(error);
  });
});

import { describe, expect, it } from "vitest";
import type { FirewallState, GuestPort } from "../../../src/firewall/model.js";
import { canonicalKey, ipv6Integer, portElements, uplinkElements } from "../../../src/firewall/nft/elements.js";
import { parseNftListing } from "../../../src/firewall/nft/live.js";
import { liveState } from "../../../src/firewall/nft/live-state.js";
import { ruleComment } from "../../../src/firewall/nft/names.js";
import { planReconcile, renderPortChange, renderPortRemoval, renderState } from "../../../src/firewall/nft/plan.js";
import { raWalkElements, renderSkeleton, skeletonRules } from "../../../src/firewall/nft/skeleton.js";
import { guardedBridge, port, state } from "./fixtures.js";

describe("nft renderer", () => {
  it("renders the fixed state exactly as the golden file", async () => {
    await expect(renderState(state, { bridgeMeta: false })).toMatchFileSnapshot("golden/nft-state.nft");
    await expect(renderState(state, { bridgeMeta: true })).toMatchFileSnapshot("golden/nft-state-bridge-meta.nft");
  });

  it("renders one port's change and removal as golden transactions of element adds and deletes only", async () => {
    const moved = { ...port, ipv6: ["2001:db8:1:1::11"], ipv4: [] } as GuestPort;
    const change = renderPortChange(port, moved).join("\n");
    const removal = renderPortRemoval("vnet1", moved).join("\n");
    await expect(change).toMatchFileSnapshot("golden/nft-port-change.nft");
    await expect(removal).toMatchFileSnapshot("golden/nft-port-removal.nft");
    // No chain or rule per port: a port change never makes the kernel validate chains.
    for (const line of [...change.split("\n"), ...removal.split("\n")]) expect(line).toMatch(/^(add|delete) element bridge v6agent /);
    // Every delete is preceded by an add of the same element (idempotent without `destroy`).
    const lines = change.split("\n");
    lines.forEach((line, i) => {
      if (line.startsWith("delete ")) expect(lines[i - 1]).toBe(line.replace(/^delete /, "add "));
    });
    // What stays is only re-asserted (an add of an existing element changes nothing, and puts
    // back one deleted by hand); the old address goes, the new comes.
    expect(change).not.toContain("delete element bridge v6agent port_mac");
    expect(change).toContain('delete element bridge v6agent port_ip6 { "vnet1" . 2001:db8:1:1::10 }');
    expect(change).toContain('add element bridge v6agent port_ip6 { "vnet1" . 2001:db8:1:1::11 }');
  });

  it("keys every per-port datum by the device, with ND values as raw integers", () => {
    const elements = portElements(port);
    expect(elements.every((e) => e.key.startsWith('"vnet1"'))).toBe(true);
    expect(elements).toContainEqual({ set: "port_lladdr", key: '"vnet1" . 0x525400123456' });
    expect(elements).toContainEqual({ set: "port_target", key: `"vnet1" . ${ipv6Integer("2001:db8:1:1::10")}` });
    expect(ipv6Integer("2001:db8:1:1::10")).toBe("0x20010db8000100010000000000000010");
    // nft lists integers without leading zeros; both sides use the same form.
    expect(canonicalKey('"vnet1" . 0x00163e000001')).toBe('"vnet1" . 0x163e000001');
  });

  it("guards an uplink only when its bridge names its router", () => {
    expect(uplinkElements(state.bridges[0] as never)).toEqual([]);
    const keys = uplinkElements(guardedBridge).map((e) => `${e.set} ${e.key}`);
    expect(keys).toEqual([
      'router_guarded "uplink0"',
      'router_mac "uplink0" . 52:54:00:00:00:01',
      'router_ll "uplink0" . fe80::1',
      'router_managed "uplink0"',
      'router_prefixed "uplink0"',
      'router_prefix "uplink0" . 0x20010db800010001',
    ]);
  });

  it("bounds every walk: ND options at fixed 8-byte places, RA options by a mark that only moves forward", () => {
    const rules = skeletonRules().flatMap((c) => c.rules);
    // One definition per chain; the RA walk's steps only ever move forward, within its bound.
    const chains = skeletonRules().map((c) => c.chain);
    expect(new Set(chains).size).toBe(chains.length);
    for (const element of raWalkElements()) {
      const [from, rest] = element.split(" . ");
      const to = Number(rest?.split(" : ")[1]);
      expect(to).toBeGreaterThan(Number(from));
      expect(to).toBeLessThanOrEqual(16 + 256);
    }
    // ND: three options, then anything more is dropped.
    expect(rules).toContain("icmpv6 type 135-136 @th,384,8 >= 0 goto drop_spoof");
    expect(rules).toContain("icmpv6 type nd-router-solicit @th,256,8 >= 0 goto drop_spoof");
    expect(rules).toContain("meta l4proto ipv6-icmp icmpv6 type mld-listener-query goto drop_mld");
    expect(renderSkeleton()).toContain("add chain bridge v6agent prerouting { type filter hook prerouting priority -300; policy accept; }");
  });

  it("gives each rule a stable comment derived from its text", () => {
    const comments = skeletonRules().flatMap((c) => c.rules.map(ruleComment));
    expect(ruleComment("a")).toBe(ruleComment("a"));
    expect(ruleComment("a")).not.toBe(ruleComment("b"));
    expect(comments.length).toBeGreaterThan(100);
  });

  it("parses nft's listing into elements, comments, counters, and plans nothing for the state it shows", () => {
    // As `nft list table bridge v6agent` prints it (nft 1.0.6), cut down to the port sets.
    const listing = [
      "table bridge v6agent {",
      "\tcounter unknown_br0 {",
      "\t\tpackets 3 bytes 300",
      "\t}",
      "",
      "\tset guest_ports {",
      "\t\ttype ifname",
      '\t\telements = { "vnet1" comment "bridge=br0 mac=52:54:00:12:34:56" }',
      "\t}",
      "\tset port_ip6 {",
      "\t\ttype ifname . ipv6_addr",
      '\t\telements = { "vnet1" . 2001:db8:1:1::10,',
      '\t\t\t     "vnet1" . fe80::5054:ff:fe12:3456 }',
      "\t}",
      "\tset port_ip4 {",
      "\t\ttype ifname . ipv4_addr",
      '\t\telements = { "vnet1" . 192.0.2.10 }',
      "\t}",
      "\tset drops_ra {",
      "\t\ttype ifname",
      "\t\tsize 65535",
      "\t\tflags dynamic",
      "\t\tcounter",
      '\t\telements = { "vnet1" counter packets 2 bytes 160,',
      '\t\t\t     "gone0" counter packets 0 bytes 0 }',
      "\t}",
      "\tmap ports {",
      "\t\ttype ifname : verdict",
      "\t}",
      "\tchain bridge_br0 {",
      '\t\tiifname @trusted_br0 goto uplink comment "v6a:aaaaaaaaaaaa"',
      "\t}",
      "}",
    ].join("\n");
    const live = parseNftListing(listing);
    expect(live.olderLayout).toEqual(["map ports"]);
    expect(live.sets.get("port_ip6")).toEqual(['"vnet1" . 2001:db8:1:1::10', '"vnet1" . fe80::5054:ff:fe12:3456']);
    expect(live.comments.get('guest_ports "vnet1"')).toBe("bridge=br0 mac=52:54:00:12:34:56");
    expect(live.counters.get("unknown_br0")).toEqual({ packets: 3, bytes: 300 });
    expect(live.elementCounters.get("drops_ra")?.get("vnet1")).toEqual({ packets: 2, bytes: 160 });
    expect(live.chains.get("bridge_br0")).toEqual(["v6a:aaaaaaaaaaaa"]);
    const read = liveState(live);
    expect(read.ports).toEqual([port]);
    // A plan against a listing of exactly the rendered state writes nothing.
    const full = parseNftListing(listingOf(state));
    const plan = planReconcile(state, full, { bridgeMeta: false });
    expect(plan.ports).toEqual([]);
    expect(plan.uplinks).toEqual([]);
  });
});

/** A listing of `state`'s sets as nft would print them (enough for the element comparison). */
function listingOf(desired: FirewallState): string {
  const sets = new Map<string, string[]>();
  for (const e of desired.ports.flatMap(portElements)) sets.set(e.set, [...(sets.get(e.set) ?? []), e.key]);
  const lines = ["table bridge v6agent {"];
  for (const [set, keys] of sets) {
    const shown = keys.map((k) => (set === "guest_ports" ? `${k} comment "bridge=br0 mac=52:54:00:12:34:56"` : k));
    lines.push(`\tset ${set} {`, `\t\telements = { ${shown.join(",\n\t\t\t")} }`, "\t}");
  }
  lines.push("}");
  return lines.join("\n");
}

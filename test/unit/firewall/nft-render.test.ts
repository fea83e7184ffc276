import { describe, expect, it } from "vitest";
import { parseNftListing } from "../../../src/firewall/nft/live.js";
import {
  ipv6Integer,
  renderPortRemoval,
  renderPortRules,
  renderPortUpsert,
  renderState,
  ruleComment,
} from "../../../src/firewall/nft/render.js";
import { port, state } from "./fixtures.js";

describe("nft renderer", () => {
  it("renders the fixed state exactly as the golden file", async () => {
    await expect(renderState(state, { bridgeMeta: false })).toMatchFileSnapshot("golden/nft-state.nft");
    await expect(renderState(state, { bridgeMeta: true })).toMatchFileSnapshot("golden/nft-state-bridge-meta.nft");
  });

  it("renders one port's upsert and removal as golden transactions", async () => {
    await expect(renderPortUpsert(port)).toMatchFileSnapshot("golden/nft-port-upsert.nft");
    await expect(renderPortRemoval("vnet1")).toMatchFileSnapshot("golden/nft-port-removal.nft");
  });

  it("matches ND targets and link-layer options with raw payloads (no icmpv6 taddr in nft 1.0.6)", () => {
    const rules = renderPortRules(port).join("\n");
    expect(rules).not.toContain("taddr");
    expect(rules).toContain(
      `nd-neighbor-advert @th,64,128 != ${ipv6Integer("fe80::5054:ff:fe12:3456")} @th,64,128 != ${ipv6Integer("2001:db8:1:1::10")} goto drop_spoof`,
    );
    // A port chain only narrows: the shared `guest` chain accepts what is left.
    expect(rules).not.toMatch(/accept|jump/);
    // No anonymous sets per port: they make large transactions quadratically slow in nft 1.0.6.
    expect(rules).not.toContain("{");
    expect(rules).toContain("@th,208,48 != 0x525400123456");
    expect(ipv6Integer("2001:db8:1:1::10")).toBe("0x20010db8000100010000000000000010");
  });

  it("gives each rule a stable comment derived from its text", () => {
    const comments = renderPortRules(port).map(ruleComment);
    expect(new Set(comments).size).toBe(comments.length);
    expect(ruleComment("a")).toBe(ruleComment("a"));
    expect(ruleComment("a")).not.toBe(ruleComment("b"));
  });

  it("parses nft's listing into sets, chains, the dispatch map and counters", () => {
    // As `nft list table bridge v6agent` prints it (nft 1.0.6), cut down.
    const listing = [
      "table bridge v6agent {",
      "\tcounter unknown_br0 {",
      "\t\tpackets 3 bytes 300",
      "\t}",
      "",
      "\tmap ports {",
      "\t\ttype ifname : verdict",
      '\t\telements = { "vnet1" comment "bridge=br0 mac=52:54:00:12:34:56" : jump port_vnet1,',
      '\t\t\t     "vnet2" comment "bridge=br0 mac=52:54:00:12:34:57" : jump port_vnet2 }',
      "\t}",
      "",
      "\tmap ra_counters {",
      "\t\ttype ifname : counter",
      "\t}",
      "",
      "\tset trusted_br0 {",
      "\t\ttype ifname",
      '\t\telements = { "uplink0" }',
      "\t}",
      "",
      "\tset drops_ra {",
      "\t\ttype ifname",
      "\t\tsize 65535",
      "\t\tflags dynamic",
      "\t\tcounter",
      '\t\telements = { "vnet1" counter packets 2 bytes 160,',
      '\t\t\t     "vnet2" counter packets 0 bytes 0 }',
      "\t}",
      "",
      "\tset drops_spoof {",
      "\t\ttype ifname",
      "\t\tsize 65535",
      "\t\tflags dynamic",
      "\t\tcounter",
      "\t}",
      "",
      "\tchain prerouting {",
      "\t\ttype filter hook prerouting priority -300; policy accept;",
      '\t\tiifname vmap @ports comment "v6a:aaaaaaaaaaaa"',
      "\t}",
      "",
      "\tchain port_vnet1 {",
      '\t\tether saddr != 52:54:00:12:34:56 goto drop_spoof comment "v6a:a858ad762904"',
      '\t\tip6 saddr != :: ip6 saddr != fe80::5054:ff:fe12:3456 ip6 saddr != 2001:db8:1:1::10 goto drop_spoof comment "v6a:9ed625fe0329"',
      '\t\tarp saddr ip != 0.0.0.0 arp saddr ip != 192.0.2.10 goto drop_ipv4 comment "v6a:63e7e6de2ccb"',
      '\t\tether type ip ip saddr != 192.0.2.10 goto drop_ipv4 comment "v6a:437f801d3f0e"',
      "\t\tether type ip accept",
      "\t}",
      "}",
    ].join("\n");
    const live = parseNftListing(listing);
    expect(live.hasPortsMap).toBe(true);
    expect(live.ports.get("vnet1")).toBe("port_vnet1");
    expect(live.ports.get("vnet2")).toBe("port_vnet2");
    expect(live.portComments.get("vnet2")).toBe("bridge=br0 mac=52:54:00:12:34:57");
    expect(live.sets.get("trusted_br0")).toEqual(["uplink0"]);
    expect(live.chains.get("prerouting")).toEqual(["v6a:aaaaaaaaaaaa"]);
    expect(live.chains.get("port_vnet1")).toEqual([
      "v6a:a858ad762904",
      "v6a:9ed625fe0329",
      "v6a:63e7e6de2ccb",
      "v6a:437f801d3f0e",
      undefined,
    ]);
    // The own-address lists, without `::` and without ARP's sender addresses.
    expect(live.sources.get("port_vnet1")).toEqual({ ip6: ["fe80::5054:ff:fe12:3456", "2001:db8:1:1::10"], ip4: ["192.0.2.10"] });
    expect(live.counters.get("unknown_br0")).toEqual({ packets: 3, bytes: 300 });
    expect(live.elementCounters.get("drops_ra")?.get("vnet1")).toEqual({ packets: 2, bytes: 160 });
    expect(live.elementCounters.get("drops_spoof")?.size).toBe(0);
    // Only sets that count per element are counter sets; a map other than `ports` is an older layout.
    expect(live.elementCounters.has("trusted_br0")).toBe(false);
    expect(live.otherMaps).toEqual(["ra_counters"]);
  });
});

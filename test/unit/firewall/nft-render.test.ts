import { describe, expect, it } from "vitest";
import { parseNftJson } from "../../../src/firewall/nft/live.js";
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
    expect(rules).toContain(`@th,64,128 ${ipv6Integer("fe80::5054:ff:fe12:3456")} accept`);
    expect(rules).toContain(`@th,64,128 ${ipv6Integer("2001:db8:1:1::10")} accept`);
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

  it("parses nft -j output into sets, chains, the dispatch map and counters", () => {
    const live = parseNftJson(
      JSON.stringify({
        nftables: [
          { metainfo: { version: "1.0.6" } },
          { counter: { name: "unknown_br0", packets: 3, bytes: 300 } },
          {
            set: {
              name: "drops_ra",
              elem: [{ elem: { val: "vnet1", counter: { packets: 2, bytes: 160 } } }],
              stmt: [{ counter: null }],
            },
          },
          { map: { name: "ra_counters", elem: [] } },
          { set: { name: "ip6_vnet1", elem: ["2001:db8::1", "fe80::1"] } },
          { map: { name: "ports", elem: [["vnet1", { jump: { target: "port_vnet1" } }]] } },
          { chain: { name: "port_vnet1" } },
          { rule: { chain: "port_vnet1", comment: "v6a:1" } },
          { rule: { chain: "port_vnet1" } },
        ],
      }),
    );
    expect(live.hasPortsMap).toBe(true);
    expect(live.ports.get("vnet1")).toBe("port_vnet1");
    expect(live.sets.get("ip6_vnet1")).toEqual(["2001:db8::1", "fe80::1"]);
    expect(live.chains.get("port_vnet1")).toEqual(["v6a:1", undefined]);
    expect(live.counters.get("unknown_br0")).toEqual({ packets: 3, bytes: 300 });
    expect(live.elementCounters.get("drops_ra")?.get("vnet1")).toEqual({ packets: 2, bytes: 160 });
    // Only sets that count per element are counter sets; a map other than `ports` is an older layout.
    expect(live.elementCounters.has("ip6_vnet1")).toBe(false);
    expect(live.otherMaps).toEqual(["ra_counters"]);
  });
});

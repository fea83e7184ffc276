import { describe, expect, it } from "vitest";
import { parseSave } from "../../../src/firewall/xtables/live.js";
import {
  ebBridgeRules,
  ebPortLines,
  ebPortRules,
  ip6PortLines,
  ip6PortRules,
  ip6TargetRules,
  restoreBatch,
  ruleKind,
} from "../../../src/firewall/xtables/render.js";
import { bridge, port } from "./fixtures.js";

describe("xtables renderer", () => {
  it("renders the fixed port and bridge exactly as the golden files", async () => {
    await expect(
      restoreBatch([...ebPortLines(port), ...ebBridgeRules(bridge, false).map((r) => `-A V6B-br0 ${r.text}`)]),
    ).toMatchFileSnapshot("golden/ebtables-port.rules");
    await expect(restoreBatch(ip6PortLines(port))).toMatchFileSnapshot("golden/ip6tables-port.rules");
  });

  it("classifies every drop rule into the counter kind it was rendered with", () => {
    for (const rule of [...ebPortRules(port), ...ip6PortRules(port), ...ip6TargetRules(port)]) {
      expect([rule.text, ruleKind(rule.text)]).toEqual([rule.text, rule.kind]);
    }
  });

  it("never accepts: what passes returns to the caller's chain", () => {
    const all = [...ebPortRules(port), ...ip6PortRules(port), ...ip6TargetRules(port), ...ebBridgeRules(bridge, true)];
    expect(all.filter((r) => r.text.includes("ACCEPT"))).toEqual([]);
  });

  it("checks the NA target and link-layer options at fixed offsets only without extension headers", () => {
    const rules = ip6PortRules(port).map((r) => r.text);
    const nd = rules.filter((r) => /--icmpv6-type 13[356]/.test(r));
    // Every ND rule is either the "no extension header" guard (u32 at byte 4: the next header
    // is ICMPv6) of RS, NS and NA, or comes after all three guards.
    const guard = '! --u32 "0x4>>0x8&0xff=0x3a"';
    const guards = nd.filter((r) => r.includes(guard));
    expect(guards.map((r) => /--icmpv6-type (\d+)/.exec(r)?.[1]).sort()).toEqual(["133", "135", "136"]);
    const checks = nd.filter((r) => !r.includes(guard));
    expect(checks.length).toBeGreaterThanOrEqual(4);
    expect(Math.min(...checks.map((r) => nd.indexOf(r)))).toBeGreaterThan(Math.max(...guards.map((r) => nd.indexOf(r))));
    expect(ip6TargetRules(port)[0]?.text).toBe('-m u32 --u32 "0x30=0xfe800000&&0x34=0x0&&0x38=0x505400ff&&0x3c=0xfe123456" -j RETURN');
  });

  it("parses save output with counters in both formats", () => {
    const saved = parseSave(
      [
        "*filter",
        ":FORWARD ACCEPT [0:0]",
        ":V6A-vnet1 - [0:0]",
        "[5:400] -A V6A-vnet1 -s ::/128 -j RETURN",
        "-A V6A-vnet1 -j DROP -c 7 9",
        "COMMIT",
      ].join("\n"),
    );
    expect(saved.chains.get("V6A-vnet1")).toEqual({
      rules: ["-s ::/128 -j RETURN", "-j DROP"],
      counters: [
        { packets: 5, bytes: 400 },
        { packets: 7, bytes: 9 },
      ],
    });
    expect(saved.chains.get("FORWARD")?.rules).toEqual([]);
  });
});

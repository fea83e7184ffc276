import { describe, expect, it } from "vitest";
import { ndOptionProgram, raPrefixPrograms } from "../../../src/firewall/xtables/bpf.js";
import { ebBridgeRules, ebPortLines, ebPortRules, ebRouterRules } from "../../../src/firewall/xtables/ebtables.js";
import { ip6PortLines, ip6PortRules, ip6RouterRules, ip6TargetRules } from "../../../src/firewall/xtables/ip6tables.js";
import { parseSave } from "../../../src/firewall/xtables/live.js";
import { liveState } from "../../../src/firewall/xtables/live-state.js";
import { planXtables } from "../../../src/firewall/xtables/plan.js";
import { bridge, guardedBridge, port } from "./fixtures.js";

/** A restore batch with every chain declared before any rule (a jump must name a declared chain). */
const batch = (table: string, lines: string[]) =>
  [`*${table}`, ...lines.filter((l) => l.startsWith(":")), ...lines.filter((l) => !l.startsWith(":")), "COMMIT", ""].join("\n");

describe("xtables renderer", () => {
  it("renders the fixed port and bridge exactly as the golden files", async () => {
    await expect(
      batch("nat", [
        ...ebPortLines(port),
        ":V6B-br0 RETURN",
        ...ebBridgeRules(guardedBridge, false).map((r) => `-A V6B-br0 ${r.text}`),
        ":V6R-uplink0 RETURN",
        ...ebRouterRules(guardedBridge).map((r) => `-A V6R-uplink0 ${r.text}`),
      ]),
    ).toMatchFileSnapshot("golden/ebtables-port.rules");
    await expect(
      batch("raw", [
        ...ip6PortLines(port),
        ":V6R-uplink0 - [0:0]",
        ...ip6RouterRules(guardedBridge).map((r) => `-A V6R-uplink0 ${r.text}`),
      ]),
    ).toMatchFileSnapshot("golden/ip6tables-port.rules");
  });

  it("gives every DROP rule the reason it counts as, and nothing else one", () => {
    for (const rule of [
      ...ebPortRules(port),
      ...ip6PortRules(port),
      ...ip6TargetRules(port),
      ...ebRouterRules(guardedBridge),
      ...ip6RouterRules(guardedBridge),
    ]) {
      expect([rule.text, rule.text.endsWith("-j DROP")]).toEqual([rule.text, rule.reason !== undefined]);
    }
    expect(
      ip6RouterRules(guardedBridge)
        .filter((r) => r.reason !== undefined)
        .every((r) => r.reason === "rogueRouter"),
    ).toBe(true);
  });

  it("never accepts: what passes returns to the caller's chain", () => {
    const all = [
      ...ebPortRules(port),
      ...ip6PortRules(port),
      ...ip6TargetRules(port),
      ...ebBridgeRules(bridge, true),
      ...ip6RouterRules(guardedBridge),
    ];
    expect(all.filter((r) => r.text.includes("ACCEPT"))).toEqual([]);
  });

  it("checks ND only without extension headers, then its targets and every option in one bpf program", () => {
    const rules = ip6PortRules(port).map((r) => r.text);
    const guard = '! --u32 "0x4>>0x8&0xff=0x3a"';
    const guards = rules.filter((r) => r.includes(guard));
    expect(guards.map((r) => /--icmpv6-type (\d+)/.exec(r)?.[1]).sort()).toEqual(["133", "135", "136"]);
    const options = rules.filter((r) => r.includes("-m bpf"));
    expect(options).toEqual([`-p ipv6-icmp -m bpf --bytecode "${ndOptionProgram(port.mac)}" -j DROP`]);
    expect(rules.indexOf(options[0] as string)).toBeGreaterThan(Math.max(...guards.map((r) => rules.indexOf(r))));
    // DAD from :: and NA both go to the own-target chain.
    expect(rules.filter((r) => r.endsWith("-j V6N-vnet1"))).toHaveLength(2);
    expect(ip6TargetRules(port)[0]?.text).toBe('-m u32 --u32 "0x30=0xfe800000&&0x34=0x0&&0x38=0x505400ff&&0x3c=0xfe123456" -j RETURN');
  });

  it("compares the port's MAC in the ND program and stays within xt_bpf's 64 instructions", () => {
    const program = ndOptionProgram("52:54:00:12:34:56");
    const [count, ...instructions] = program.split(",");
    expect(Number(count)).toBe(instructions.length);
    expect(instructions.length).toBeLessThanOrEqual(64);
    expect(program).toContain(` ${0x52540012},`);
    expect(program).toContain(` ${0x3456},`);
  });

  it("splits the RA prefix walk into bpf programs xt_bpf takes (at most 64 instructions each)", () => {
    const programs = raPrefixPrograms("2001:db8:1:1::/64");
    expect(programs.length).toBeGreaterThan(1);
    for (const program of programs) {
      const [count, ...instructions] = program.split(",");
      expect(Number(count)).toBe(instructions.length);
      expect(instructions.length).toBeLessThanOrEqual(64);
      // Forward jumps only, each inside the program.
      instructions.forEach((insn, i) => {
        const [code, jt, jf] = insn.split(" ").map(Number) as [number, number, number];
        if ((code & 0x07) === 0x05) expect(i + 1 + Math.max(jt, jf)).toBeLessThan(instructions.length);
      });
    }
    // The prefix's two words are what each check compares against.
    expect(programs[0]).toMatch(new RegExp(`,64 0 0 16,21 0 \\d+ ${0x20010db8},64 0 0 20,21 0 \\d+ ${0x00010001},`));
  });

  it("reads back the router policy, bridges and ports it wrote, and plans nothing more", () => {
    const eb = parseSave(
      batch("nat", [
        ":PREROUTING ACCEPT",
        ":V6AGENT RETURN",
        ...ebPortLines(port),
        ":V6B-br0 RETURN",
        ...ebBridgeRules(guardedBridge, false).map((r) => `-A V6B-br0 ${r.text}`),
        ":V6R-uplink0 RETURN",
        ...ebRouterRules(guardedBridge).map((r) => `-A V6R-uplink0 ${r.text}`),
        "-A PREROUTING -j V6AGENT",
        "-A V6AGENT -i vnet1 -j V6A-vnet1",
        "-A V6AGENT -i vnet1 -j RETURN",
        "-A V6AGENT -j V6B-br0",
      ]),
      "nat",
    );
    const ip6 = parseSave(
      batch("raw", [
        ":PREROUTING ACCEPT [0:0]",
        ":V6AGENT - [0:0]",
        ...ip6PortLines(port),
        ":V6R-uplink0 - [0:0]",
        ...ip6RouterRules(guardedBridge).map((r) => `-A V6R-uplink0 ${r.text}`),
        "-A PREROUTING -j V6AGENT",
        '-A V6AGENT -m physdev --physdev-in vnet1 -m comment --comment "v6agent bridge=br0" -g V6A-vnet1',
        "-A V6AGENT -m physdev --physdev-in uplink0 -g V6R-uplink0",
        "-A V6AGENT -i br0 -j DROP",
      ]),
      "raw",
    );
    const state = { bridges: [guardedBridge], ports: [port] };
    expect(liveState(eb, ip6)).toEqual(state);
    const plan = planXtables(state, eb, ip6, false);
    expect(plan).toEqual({ eb: [], ip6: [], result: { changed: false, addedPorts: [], updatedPorts: [], removedPorts: [] } });
  });

  it("parses save output with counters in both formats, one table at a time", () => {
    const saved = parseSave(
      [
        "*filter",
        ":V6A-vnet1 - [0:0]",
        "-A V6A-vnet1 -j DROP",
        "COMMIT",
        "*raw",
        ":FORWARD ACCEPT [0:0]",
        ":V6A-vnet1 - [0:0]",
        "[5:400] -A V6A-vnet1 -s ::/128 -j RETURN",
        "-A V6A-vnet1 -j DROP -c 7 9",
        "COMMIT",
      ].join("\n"),
      "raw",
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

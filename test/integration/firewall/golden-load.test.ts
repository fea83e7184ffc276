import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Netns } from "../../../src/lab/netns.js";
import { skipReason } from "../../support/requirements.js";

const skip = skipReason({ root: true, commands: ["nft", "ebtables-restore", "ip6tables-restore"] });
const golden = (name: string) => readFileSync(new URL(`../../unit/firewall/golden/${name}`, import.meta.url), "utf8");

// The golden files are what the renderers emit; here the installed tools and kernel accept them,
// so every expression is checked against this nft (1.0.6) and these xtables, not just by eye.
describe.skipIf(skip !== undefined)("golden rule files load into the real tools", () => {
  let ns: Netns;
  beforeAll(async () => {
    ns = await Netns.create("fwg");
  });
  afterAll(async () => {
    await ns?.destroy();
  });

  it("nft accepts the full state, then the port upsert and removal transactions", async () => {
    await ns.exec("nft", ["-f", "-"], { input: golden("nft-state.nft") });
    await ns.exec("nft", ["-f", "-"], { input: golden("nft-port-upsert.nft") });
    expect((await ns.exec("nft", ["list", "chain", "bridge", "v6agent", "port_vnet1"])).stdout).toContain("@th,64,128");
    await ns.exec("nft", ["-f", "-"], { input: golden("nft-port-removal.nft") });
    await ns.exec("nft", ["-f", "-"], { input: golden("nft-port-removal.nft") });
    expect((await ns.exec("nft", ["list", "table", "bridge", "v6agent"])).stdout).not.toContain("port_vnet1");
  });

  it("ebtables-restore and ip6tables-restore accept the port batches", async () => {
    await ns.exec("ebtables-restore", ["--noflush"], {
      input: golden("ebtables-port.rules").replace("*filter\n", "*filter\n:V6B-br0 RETURN\n"),
    });
    await ns.exec("ip6tables-restore", ["-w", "5", "--noflush"], { input: golden("ip6tables-port.rules") });
    expect((await ns.exec("ebtables-save", [])).stdout).toContain("-A V6A-vnet1 -s ! 52:54:00:12:34:56 -j DROP");
    expect((await ns.exec("ip6tables-save", [])).stdout).toContain("-A V6A-vnet1 -s fe80::5054:ff:fe12:3456/128 -j RETURN");
  });
});

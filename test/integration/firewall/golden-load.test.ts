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

  it("nft accepts the full state, then a port's change and its removal (twice: idempotent)", async () => {
    await ns.exec("nft", ["-f", "-"], { input: golden("nft-state.nft") });
    await ns.exec("nft", ["-f", "-"], { input: golden("nft-port-change.nft") });
    const ip6 = (await ns.exec("nft", ["list", "set", "bridge", "v6agent", "port_ip6"])).stdout;
    expect(ip6).toContain('"vnet1" . 2001:db8:1:1::11');
    expect(ip6).not.toContain('"vnet1" . 2001:db8:1:1::10');
    await ns.exec("nft", ["-f", "-"], { input: golden("nft-port-removal.nft") });
    await ns.exec("nft", ["-f", "-"], { input: golden("nft-port-removal.nft") });
    expect((await ns.exec("nft", ["list", "set", "bridge", "v6agent", "guest_ports"])).stdout).not.toContain("vnet1");
  });

  it("ebtables-restore and ip6tables-restore accept the port and router-guard batches", async () => {
    await ns.exec("ebtables-restore", ["--noflush"], { input: golden("ebtables-port.rules") });
    await ns.exec("ip6tables-restore", ["-w", "5", "--noflush"], { input: golden("ip6tables-port.rules") });
    const eb = (await ns.exec("ebtables-save", ["-t", "nat"])).stdout;
    const ip6 = (await ns.exec("ip6tables-save", ["-t", "raw"])).stdout;
    // What the tools print back is exactly what was rendered (reconcile compares the two).
    for (const line of golden("ebtables-port.rules")
      .split("\n")
      .filter((l) => l.startsWith("-A ")))
      expect(eb).toContain(line);
    for (const line of golden("ip6tables-port.rules")
      .split("\n")
      .filter((l) => l.startsWith("-A ")))
      expect(ip6).toContain(line);
  });
});

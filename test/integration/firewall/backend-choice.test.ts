import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { V6Error } from "../../../src/errors.js";
import { createFirewall, nftBridgeWorks } from "../../../src/firewall/index.js";
import type { FirewallState, GuestPort } from "../../../src/firewall/model.js";
import { detectTools } from "../../../src/firewall/xtables/tools.js";
import { Netns } from "../../../src/lab/netns.js";
import { skipReason } from "../../support/requirements.js";

const skip = skipReason({ root: true, commands: ["nft", "ebtables", "ip6tables"] });

const desired: FirewallState = {
  bridges: [{ name: "br0", trustedPorts: ["uplink0"], guestPortPatterns: ["vnet*"] }] as never,
  ports: [
    {
      device: "vnet1",
      bridge: "br0",
      mac: "52:54:00:00:01:01",
      linkLocals: ["fe80::5054:ff:fe00:101"],
      ipv6: ["2001:db8:1:1::1"],
      ipv4: [],
    } as unknown as GuestPort,
  ],
};

/** What of either backend is live in the namespace, from the tools themselves. */
async function live(ns: Netns): Promise<{ nft: boolean; xtables: boolean }> {
  const tables = (await ns.exec("nft", ["list", "tables"])).stdout;
  const eb = (await ns.exec("ebtables-save", [])).stdout;
  const ip6 = (await ns.exec("ip6tables-save", [])).stdout;
  return { nft: tables.includes("table bridge v6agent"), xtables: /V6AGENT|V6A-/.test(eb + ip6) };
}

describe.skipIf(skip !== undefined)("firewall backend choice", () => {
  let ns: Netns;
  beforeAll(async () => {
    ns = await Netns.create("fwk");
  });
  afterAll(async () => {
    await ns?.destroy();
  });

  it("auto picks nftables where its bridge family works, without leaving a probe table", async () => {
    expect(await nftBridgeWorks(ns.name)).toBe(true);
    expect((await createFirewall({ backend: "auto", netns: ns.name })).backend).toBe("nft");
    expect((await ns.exec("nft", ["list", "ruleset"])).stdout).not.toContain("v6agent_probe");
  });

  it("detects the xtables flavour from ebtables --version", async () => {
    const version = (await ns.exec("ebtables", ["--version"])).stdout;
    const tools = await detectTools(ns.name);
    expect(tools.flavour).toBe(version.includes("legacy") ? "legacy" : "nft");
    expect(tools.ebRestore).toBe(tools.flavour === "nft" ? "ebtables-nft-restore" : "ebtables-legacy-restore");
  });

  it("refuses an unknown backend name", async () => {
    const error = await createFirewall({ backend: "iptables" as never }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(V6Error);
    expect((error as V6Error).field).toBe("backend");
  });
});

// Issue 16: a host that ran one backend and starts with the other must not keep two rule sets.
describe.skipIf(skip !== undefined)("switching backends", () => {
  let ns: Netns;
  beforeEach(async () => {
    ns = await Netns.create("fwq");
  });
  afterEach(async () => {
    await ns?.destroy();
  });

  it.each([
    ["nft", "xtables"],
    ["xtables", "nft"],
  ] as const)(
    "from %s to %s: creating the new one changes nothing, its first reconcile removes the old rules, and each sees the other's",
    async (from, to) => {
      const before = await createFirewall({ backend: from, netns: ns.name });
      await before.reconcile(desired);
      expect(await live(ns)).toEqual({ nft: from === "nft", xtables: from === "xtables" });
      const after = await createFirewall({ backend: to, netns: ns.name });
      // What diag reports: the other backend's rules, from either side.
      expect(await after.otherBackendRules()).not.toEqual([]);
      expect(await before.otherBackendRules()).toEqual([]);
      // A dry run (diag) reports a change and removes nothing.
      expect((await after.reconcile(desired, { dryRun: true })).changed).toBe(true);
      expect(await live(ns)).toEqual({ nft: from === "nft", xtables: from === "xtables" });
      // The first real reconcile installs the new backend's rules, then removes the old ones.
      const result = await after.reconcile(desired);
      expect(result.changed).toBe(true);
      expect(await live(ns)).toEqual({ nft: to === "nft", xtables: to === "xtables" });
      expect(await after.otherBackendRules()).toEqual([]);
      expect((await after.readLive()).ports.map((p) => p.device)).toEqual(["vnet1"]);
      expect((await after.reconcile(desired)).changed).toBe(false);
    },
  );

  it("removes the first xtables layout (filter FORWARD/INPUT chains) when the xtables backend starts", async () => {
    await ns.exec("ebtables", ["-N", "V6A-vnet1", "-P", "RETURN"]);
    await ns.exec("ebtables", ["-N", "V6AGENT", "-P", "RETURN"]);
    await ns.exec("ebtables", ["-A", "V6AGENT", "-i", "vnet1", "-j", "V6A-vnet1"]);
    await ns.exec("ebtables", ["-I", "FORWARD", "1", "-j", "V6AGENT"]);
    await ns.exec("ip6tables", ["-w", "-N", "V6AGENT"]);
    await ns.exec("ip6tables", ["-w", "-I", "FORWARD", "1", "-j", "V6AGENT"]);
    const firewall = await createFirewall({ backend: "xtables", netns: ns.name });
    expect((await firewall.reconcile(desired)).changed).toBe(true);
    const filter = (await ns.exec("ebtables-save", ["-t", "filter"])).stdout + (await ns.exec("ip6tables-save", ["-t", "filter"])).stdout;
    expect(filter).not.toMatch(/V6A/);
    expect((await firewall.reconcile(desired)).changed).toBe(false);
  });
});

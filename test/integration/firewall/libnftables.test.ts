import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { run } from "../../../src/exec.js";
import { isNotFound, keptNftContexts, NftError, nft, releaseNft, rulesetGeneration } from "../../../src/firewall/nft/libnftables.js";
import { Netns } from "../../../src/lab/netns.js";
import { skipReason } from "../../support/requirements.js";

const addonPath = fileURLToPath(new URL("../../../native/build/Release/v6agent_nftables.node", import.meta.url));
const skip = skipReason({ root: true, commands: ["nft"], files: [{ path: addonPath, from: "npm run build" }] });

describe.skipIf(skip !== undefined)("libnftables binding (native/src/nftables.cc)", () => {
  let ns: Netns;
  let other: Netns;

  beforeEach(async () => {
    ns = await Netns.create("nfb");
    other = await Netns.create("nfb");
  });
  afterEach(async () => {
    await ns?.destroy();
    await other?.destroy();
  });

  it("commits one script as one transaction in the namespace it names, and only there", async () => {
    await nft("add table bridge t\nadd chain bridge t c\nadd rule bridge t c ether type arp counter accept", { netns: ns.name });
    // The nft binary, started in that namespace, sees it; the other namespace does not.
    expect((await run("nft", ["list", "table", "bridge", "t"], { netns: ns.name })).stdout).toContain("ether type arp counter");
    expect((await run("nft", ["list", "tables"], { netns: other.name })).stdout).not.toContain("table bridge t");
    // Listing through the binding gives nft's own text, and JSON on request.
    expect(await nft("list table bridge t", { netns: ns.name })).toContain("chain c {");
    const json = JSON.parse(await nft("list table bridge t", { netns: ns.name, json: true })) as { nftables: unknown[] };
    expect(json.nftables.some((item) => "rule" in (item as object))).toBe(true);
  });

  it("applies nothing of a script with one bad command, and says what nft says", async () => {
    await nft("add table bridge t", { netns: ns.name });
    const error = await nft("add chain bridge t ok\nadd rule bridge t nosuchchain drop", { netns: ns.name }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NftError);
    expect(isNotFound(error)).toBe(true);
    expect((error as NftError).stderr).toContain("add rule bridge t nosuchchain drop");
    // Atomic: the chain of the same script is not there either.
    expect(await nft("list table bridge t", { netns: ns.name })).not.toContain("chain ok");
  });

  it("checks without committing (dry run), and refuses a namespace that is not a name or does not exist", async () => {
    await nft("add table bridge dry", { netns: ns.name, dryRun: true });
    expect(await nft("list tables", { netns: ns.name })).not.toContain("dry");
    await expect(nft("list tables", { netns: "../../proc/1/ns/net" })).rejects.toThrow(/not a namespace name/);
    await expect(nft("list tables", { netns: "v6-no-such-ns" })).rejects.toThrow(/cannot open network namespace/);
  });

  it("reads the ruleset generation: a commit changes it, a listing or a dry run does not", async () => {
    const before = await rulesetGeneration(ns.name);
    await nft("list tables", { netns: ns.name });
    await nft("add table bridge dry", { netns: ns.name, dryRun: true });
    expect(await rulesetGeneration(ns.name)).toBe(before);
    await nft("add table bridge t", { netns: ns.name });
    expect(await rulesetGeneration(ns.name)).toBeGreaterThan(before);
    // Each namespace has its own.
    const elsewhere = await rulesetGeneration(other.name);
    await nft("add table bridge t2", { netns: ns.name });
    expect(await rulesetGeneration(other.name)).toBe(elsewhere);
    await expect(rulesetGeneration("v6-no-such-ns")).rejects.toThrow(/cannot open network namespace/);
  });

  it("keeps one context per namespace, and a namespace deleted and made again under its name is the new one", async () => {
    await nft("add table bridge old", { netns: ns.name });
    expect(keptNftContexts()).toBeGreaterThanOrEqual(1);
    const name = ns.name;
    await ns.destroy();
    const again = await Netns.createNamed(name);
    try {
      // The kept socket was bound to the old namespace: the call must see the new, empty one.
      expect(await nft("list tables", { netns: name })).not.toContain("table bridge old");
      await nft("add table bridge new", { netns: name });
      expect((await run("nft", ["list", "tables"], { netns: name })).stdout).toContain("table bridge new");
    } finally {
      await again.destroy();
    }
  });

  it("closes the context of a deleted namespace by itself, and all on release", async () => {
    await nft("list tables", { netns: other.name });
    const kept = keptNftContexts();
    await other.destroy();
    // Checked at each idle tick (half a second): our socket must not keep the namespace alive.
    const deadline = Date.now() + 5000;
    while (keptNftContexts() >= kept && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(keptNftContexts()).toBeLessThan(kept);
    await nft("list tables", { netns: ns.name });
    await releaseNft();
    expect(keptNftContexts()).toBe(0);
  });

  it("does not leak: rounds of commits, listings, failures and context re-opens leave RSS flat", async () => {
    await nft("add table bridge t\nadd chain bridge t c", { netns: ns.name });
    // A child with --expose-gc so a collection precedes every reading; rounds 1-2 warm up. The
    // counts fit an untuned kernel (rcu_expedited 0): a commit on the kept context costs ~0.3 ms,
    // but a batch the kernel refuses, and closing a context that committed, each wait for an RCU
    // grace period (8-20 ms), so those come in tens per round, not thousands.
    const script = `
      const addon = require(${JSON.stringify(addonPath)});
      const netns = ${JSON.stringify(`/run/netns/${ns.name}`)};
      (async () => {
        const rss = [];
        for (let round = 0; round < 6; round++) {
          for (let i = 0; i < 1000; i++) {
            await addon.run("flush chain bridge t c\\nadd rule bridge t c ether saddr 00:00:5e:00:53:01 drop", { netns });
            await addon.run("list table bridge t", { netns });
            await addon.run("add rule bridge t c ether saddr nonsense", { netns }).catch(() => undefined);
          }
          for (let i = 0; i < 30; i++) await addon.run("add rule bridge t nosuchchain drop", { netns }).catch(() => undefined);
          for (let i = 0; i < 20; i++) {
            await addon.run("flush chain bridge t c", { netns });
            await addon.release({ netns });
          }
          globalThis.gc();
          rss.push(process.memoryUsage().rss);
        }
        process.stdout.write(JSON.stringify({ rss, kept: addon.keptNamespaces() }));
      })();`;
    const { stdout } = await run(process.execPath, ["--expose-gc", "-e", script], { timeoutMs: 100_000 });
    const { rss, kept } = JSON.parse(stdout) as { rss: number[]; kept: number };
    expect(rss).toHaveLength(6);
    expect(kept).toBe(0);
    // 9,000 calls and 60 context re-opens over the last three rounds: a leaked context, cache or
    // error text per call would add megabytes.
    expect((rss[5] as number) - (rss[2] as number)).toBeLessThan(1.5 * 1024 * 1024);
  });
});

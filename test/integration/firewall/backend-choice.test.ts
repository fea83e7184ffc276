import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { V6Error } from "../../../src/errors.js";
import { createFirewall, nftBridgeWorks } from "../../../src/firewall/index.js";
import { detectTools } from "../../../src/firewall/xtables/apply.js";
import { Netns } from "../../../src/lab/netns.js";
import { skipReason } from "../../support/requirements.js";

const skip = skipReason({ root: true, commands: ["nft", "ebtables"] });

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

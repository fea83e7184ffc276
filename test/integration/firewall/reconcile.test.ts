import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { InvalidArgumentError } from "../../../src/errors.js";
import { createFirewall, type NftFirewall } from "../../../src/firewall/index.js";
import type { Firewall, FirewallState, GuestPort } from "../../../src/firewall/model.js";
import { PORTS_PER_TRANSACTION } from "../../../src/firewall/nft/apply.js";
import { rulesetGeneration } from "../../../src/firewall/nft/libnftables.js";
import { Netns } from "../../../src/lab/netns.js";
import { skipReason } from "../../support/requirements.js";

const skip = skipReason({ root: true, commands: ["nft", "ebtables", "ip6tables"] });

function port(device: string, n: number): GuestPort {
  const hex = n.toString(16).padStart(2, "0");
  return {
    device,
    bridge: "br0",
    mac: `52:54:00:00:01:${hex}`,
    linkLocals: [`fe80::5054:ff:fe00:1${hex}`],
    ipv6: [`2001:db8:1:1::${n.toString(16)}`],
    ipv4: n % 2 === 0 ? [`192.0.2.${n}`] : [],
  } as unknown as GuestPort;
}

const desired: FirewallState = {
  bridges: [{ name: "br0", trustedPorts: ["uplink0"], guestPortPatterns: ["vnet*"] }] as never,
  ports: [port("vnet1", 1), port("vnet2", 2), port("vnet3", 3)],
};

/** Another program's rules in the same namespace, which we must never touch. */
const others = {
  nft: async (ns: Netns) => {
    await ns.exec("nft", ["-f", "-"], {
      input:
        "table bridge other {\n chain c {\n type filter hook forward priority 0; policy accept;\n ether type arp counter accept\n }\n}\n",
    });
  },
  xtables: async (ns: Netns) => {
    await ns.exec("ebtables", ["-N", "FORWARD_vif9"]);
    await ns.exec("ebtables", ["-A", "FORWARD_vif9", "-p", "ARP", "-j", "ACCEPT"]);
    await ns.exec("ebtables", ["-A", "FORWARD", "-i", "vif9.0", "-j", "FORWARD_vif9"]);
    await ns.exec("ip6tables", ["-w", "-A", "FORWARD", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"]);
  },
};

/** The other program's part of the live ruleset. */
async function othersSnapshot(ns: Netns, backend: "nft" | "xtables"): Promise<string> {
  if (backend === "nft") return (await ns.exec("nft", ["list", "table", "bridge", "other"])).stdout;
  const eb = (await ns.exec("ebtables-save", [])).stdout.split("\n").filter((l) => l.includes("vif9"));
  const ip6 = (await ns.exec("ip6tables-save", [])).stdout.split("\n").filter((l) => l.includes("--dport 22"));
  return [...eb, ...ip6].join("\n");
}

/** Our part of the live ruleset, with handles (nft) so an untouched rule is provably the same object. */
async function oursSnapshot(ns: Netns, backend: "nft" | "xtables", handles: boolean): Promise<string> {
  if (backend === "nft")
    return sortBlocks((await ns.exec("nft", [...(handles ? ["-a"] : []), "list", "table", "bridge", "v6agent"])).stdout);
  const strip = (text: string) => text.split("\n").filter((l) => !l.startsWith("#") && /V6A|V6B|V6N/.test(l));
  return [...strip((await ns.exec("ebtables-save", [])).stdout), ...strip((await ns.exec("ip6tables-save", [])).stdout)].join("\n");
}

/** nft lists objects in creation order; a re-created chain moves, so compare block by block. */
function sortBlocks(listing: string): string {
  const blocks: string[][] = [];
  for (const line of listing.split("\n")) {
    if (line === "}" || line.startsWith("table ")) continue;
    if (/^\t(chain|set|map|counter) /.test(line) || blocks.length === 0) blocks.push([]);
    blocks.at(-1)?.push(line);
  }
  return blocks
    .map((b) => b.join("\n"))
    .sort()
    .join("\n");
}

async function generation(ns: Netns): Promise<string> {
  // `nft list ruleset` prints no generation; `nft monitor` is interactive. The rule handles
  // (nft -a) change on any rewrite, which is what "unchanged" has to prove.
  return (await ns.exec("nft", ["-a", "list", "ruleset"])).stdout;
}

describe.skipIf(skip !== undefined).each(["nft", "xtables"] as const)("%s reconcile", (backend) => {
  let ns: Netns;
  let firewall: Firewall;

  beforeEach(async () => {
    ns = await Netns.create("fwc");
    await others[backend](ns);
    firewall = await createFirewall({ backend, netns: ns.name });
  });

  afterEach(async () => {
    await ns?.destroy();
  });

  it("applies, then reapplies nothing, and leaves other software alone", async () => {
    const theirs = await othersSnapshot(ns, backend);
    const first = await firewall.reconcile(desired);
    expect(first.changed).toBe(true);
    expect(first.addedPorts.sort()).toEqual(["vnet1", "vnet2", "vnet3"]);
    const before = await generation(ns);
    const second = await firewall.reconcile(desired);
    expect(second).toEqual({ changed: false, addedPorts: [], updatedPorts: [], removedPorts: [] });
    expect(await generation(ns)).toBe(before);
    expect(await othersSnapshot(ns, backend)).toBe(theirs);
    const live = await firewall.readLive();
    expect(live.bridges).toEqual(desired.bridges);
    expect(live.ports.sort((a, b) => a.device.localeCompare(b.device))).toEqual(desired.ports);
  });

  it("restores a port chain deleted by hand, and removes ports no longer desired", async () => {
    await firewall.reconcile(desired);
    const original = await oursSnapshot(ns, backend, false);
    if (backend === "nft") {
      await ns.exec("nft", ["-f", "-"], {
        input:
          'delete element bridge v6agent guest_ports { "vnet2" }\ndelete element bridge v6agent port_mac { "vnet2" . 52:54:00:00:01:02 }\n',
      });
    } else {
      await ns.exec("ebtables", ["-t", "nat", "-D", "V6AGENT", "-i", "vnet2", "-j", "V6A-vnet2"]);
      await ns.exec("ebtables", ["-t", "nat", "-F", "V6A-vnet2"]);
      await ns.exec("ebtables", ["-t", "nat", "-X", "V6A-vnet2"]);
      await ns.exec("ip6tables", ["-w", "-t", "raw", "-F", "V6A-vnet2"]);
    }
    expect(await oursSnapshot(ns, backend, false)).not.toBe(original);
    const repaired = await firewall.reconcile(desired);
    expect([...repaired.addedPorts, ...repaired.updatedPorts]).toEqual(["vnet2"]);
    expect(await oursSnapshot(ns, backend, false)).toBe(original);

    const fewer = await firewall.reconcile({ ...desired, ports: desired.ports.slice(0, 1) });
    expect(fewer.removedPorts.sort()).toEqual(["vnet2", "vnet3"]);
    expect((await firewall.readLive()).ports.map((p) => p.device)).toEqual(["vnet1"]);
    expect(await oursSnapshot(ns, backend, false)).not.toMatch(/vnet[23]/);
  });

  it("adds, updates and removes single ports incrementally and idempotently", async () => {
    await firewall.reconcile(desired);
    const theirs = await othersSnapshot(ns, backend);
    await firewall.upsertPort(port("vnet9", 9));
    const changed = { ...port("vnet9", 9), ipv6: ["2001:db8:1:1::99"] } as GuestPort;
    await firewall.upsertPort(changed);
    const live = await firewall.readLive();
    expect(live.ports.find((p) => p.device === "vnet9")).toEqual(changed);
    // The incremental path and the full path agree: reconcile finds nothing to do.
    expect((await firewall.reconcile({ ...desired, ports: [...desired.ports, changed] })).changed).toBe(false);
    await firewall.removePort("vnet9");
    await firewall.removePort("vnet9");
    expect((await firewall.readLive()).ports.map((p) => p.device).sort()).toEqual(["vnet1", "vnet2", "vnet3"]);
    expect((await firewall.reconcile(desired)).changed).toBe(false);
    expect(await othersSnapshot(ns, backend)).toBe(theirs);
    expect((await firewall.counters()).map((c) => c.device)).toEqual(["vnet1", "vnet2", "vnet3"]);
  });

  it("refuses invalid ports before touching anything", async () => {
    await firewall.reconcile(desired);
    const before = await oursSnapshot(ns, backend, true);
    const bad: [Partial<GuestPort>, string][] = [
      [{ mac: "52:54:00:zz:00:01" as never }, "port.mac"],
      [{ device: "vnet1;rm -rf /" as never }, "port.device"],
      [{ ipv6: ["2001:db8:9:9::1"], network: "2001:db8:1:1::/64" }, "port.ipv6[0]"],
      [{ linkLocals: ["2001:db8:1:1::5"] }, "port.linkLocals[0]"],
    ];
    for (const [patch, field] of bad) {
      const error = await firewall.upsertPort({ ...port("vnet5", 5), ...patch } as GuestPort).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).field).toBe(field);
    }
    const stateError = await firewall
      .reconcile({ ...desired, ports: [...desired.ports, { ...port("vnet6", 6), mac: "01:00:5e:00:00:01" } as never] })
      .catch((e: unknown) => e);
    expect((stateError as InvalidArgumentError).field).toBe("ports[3].mac");
    expect(await oursSnapshot(ns, backend, true)).toBe(before);
  });

  it("ensureBridge adds a second bridge and removeBridge takes its ports with it", async () => {
    await firewall.reconcile(desired);
    await firewall.ensureBridge({ name: "br1", trustedPorts: ["uplink1"] } as never);
    await firewall.upsertPort({ ...port("tap7", 7), bridge: "br1" } as GuestPort);
    let live = await firewall.readLive();
    expect(live.bridges.map((b) => b.name).sort()).toEqual(["br0", "br1"]);
    expect(live.ports.find((p) => p.device === "tap7")?.bridge).toBe("br1");
    await firewall.removeBridge("br1");
    live = await firewall.readLive();
    expect(live.bridges.map((b) => b.name)).toEqual(["br0"]);
    expect(live.ports.map((p) => p.device).sort()).toEqual(["vnet1", "vnet2", "vnet3"]);
    expect((await firewall.reconcile(desired)).changed).toBe(false);
  });

  it("removeAll removes only what we created", async () => {
    await firewall.reconcile(desired);
    const theirs = await othersSnapshot(ns, backend);
    await firewall.removeAll();
    expect(await othersSnapshot(ns, backend)).toBe(theirs);
    expect(await firewall.readLive()).toEqual({ bridges: [], ports: [] });
  });
});

describe.skipIf(skip !== undefined)("nft layout and counts", () => {
  let ns: Netns;
  let firewall: Firewall;

  beforeEach(async () => {
    ns = await Netns.create("fwl");
    firewall = await createFirewall({ backend: "nft", netns: ns.name });
  });
  afterEach(async () => {
    await ns.destroy();
  });

  it("replaces a table of an older layout (per-port chains, a dispatch map) whole, and then reapplies nothing", async () => {
    // A first-generation layout: a verdict map to per-port chains, a counter map and a port
    // chain counting into a named counter.
    await ns.exec("nft", ["-f", "-"], {
      input: [
        "table bridge v6agent {",
        "  map ports { type ifname : verdict; }",
        "  map ra_counters { type ifname : counter; }",
        "  counter ra_vnet1 { }",
        '  chain port_vnet1 { counter name "ra_vnet1" drop; }',
        "  chain prerouting { type filter hook prerouting priority -300; policy accept; iifname vmap @ports; }",
        "}",
        'add element bridge v6agent ports { "vnet1" : jump port_vnet1 }',
        'add element bridge v6agent ra_counters { "vnet1" : "ra_vnet1" }',
      ].join("\n"),
    });
    const result = await firewall.reconcile(desired);
    expect(result.addedPorts.sort()).toEqual(["vnet1", "vnet2", "vnet3"]);
    const listing = (await ns.exec("nft", ["list", "table", "bridge", "v6agent"])).stdout;
    expect(listing).not.toContain("ra_counters");
    expect(listing).not.toContain("counter ra_vnet1");
    expect(listing).not.toContain("chain port_vnet1");
    expect(listing).toContain("set drops_ra");
    expect((await firewall.reconcile(desired)).changed).toBe(false);
  });

  it("lists the table again only when something was committed since the last check", async () => {
    await firewall.reconcile(desired);
    const listings = vi.spyOn(firewall as NftFirewall, "readTable");
    expect((await firewall.reconcile(desired)).changed).toBe(false);
    expect((await firewall.reconcile(desired)).changed).toBe(false);
    // The first reconcile's own commit left the table verified: neither check listed it.
    expect(listings).toHaveBeenCalledTimes(0);
    // Another desired state is checked against the table.
    expect((await firewall.reconcile({ ...desired, ports: desired.ports.slice(0, 2) })).removedPorts).toEqual(["vnet3"]);
    expect(listings).toHaveBeenCalledTimes(1);
    // Any commit, here by hand in another table, makes the next check list again; a chain of
    // ours deleted by hand is restored.
    await ns.exec("nft", ["add table bridge other"]);
    await firewall.reconcile(desired);
    expect(listings).toHaveBeenCalledTimes(2);
    await ns.exec("nft", ['delete element bridge v6agent port_ip6 { "vnet2" . 2001:db8:1:1::2 }']);
    expect((await firewall.reconcile(desired)).updatedPorts).toEqual(["vnet2"]);
    expect(listings).toHaveBeenCalledTimes(3);
  });

  it("trusts its own commits: after a port change or a repair it does not list the table again, after anyone else's it does", async () => {
    await firewall.reconcile(desired);
    const listings = vi.spyOn(firewall as NftFirewall, "readTable");
    const withFour = { ...desired, ports: [port("vnet4", 4), ...desired.ports] };
    await firewall.upsertPort(port("vnet4", 4));
    // The table is the checked state plus vnet4, whatever order the ports are listed in.
    expect((await firewall.reconcile(withFour)).changed).toBe(false);
    await firewall.removePort("vnet1");
    const withoutOne = { ...desired, ports: withFour.ports.filter((p) => p.device !== "vnet1") };
    expect((await firewall.reconcile(withoutOne)).changed).toBe(false);
    expect(listings).toHaveBeenCalledTimes(0);
    // A state that differs from what the table holds is checked against the table.
    expect((await firewall.reconcile(withFour)).addedPorts).toEqual(["vnet1"]);
    expect(listings).toHaveBeenCalledTimes(1);
    // That reconcile's own commit is trusted too.
    expect((await firewall.reconcile(withFour)).changed).toBe(false);
    expect(listings).toHaveBeenCalledTimes(1);
    // Someone else's commit after ours: the next check lists, and repairs what they did.
    await firewall.upsertPort({ ...port("vnet4", 4), ipv6: ["2001:db8:1:1::44"] } as GuestPort);
    await ns.exec("nft", ['delete element bridge v6agent port_ip6 { "vnet2" . 2001:db8:1:1::2 }']);
    const withNewFour = {
      ...withFour,
      ports: withFour.ports.map((p) => (p.device === "vnet4" ? ({ ...p, ipv6: ["2001:db8:1:1::44"] } as GuestPort) : p)),
    };
    expect((await firewall.reconcile(withNewFour)).updatedPorts).toEqual(["vnet2"]);
    expect(listings).toHaveBeenCalledTimes(2);
    expect((await firewall.reconcile(withNewFour)).changed).toBe(false);
    expect(listings).toHaveBeenCalledTimes(2);
    // Re-asserting a port the verified table holds commits nothing; a changed one commits once.
    const held = await rulesetGeneration(ns.name);
    await firewall.upsertPort(withNewFour.ports[0] as GuestPort);
    expect(await rulesetGeneration(ns.name)).toBe(held);
    await firewall.upsertPort(port("vnet4", 4));
    expect(await rulesetGeneration(ns.name)).toBe(held + 1);
    expect((await firewall.reconcile({ ...withNewFour, ports: [port("vnet4", 4), ...withNewFour.ports.slice(1)] })).changed).toBe(false);
    expect(listings).toHaveBeenCalledTimes(2);
  });

  it("keeps a port's counts across a rule update, forgets them when the port goes, and drops stale ones", async () => {
    await firewall.reconcile(desired);
    // Counts as the drop chains would leave them (the attack tests make real ones).
    await ns.exec("nft", ['add element bridge v6agent drops_ra { "vnet1" counter packets 3 bytes 300 }']);
    await ns.exec("nft", ['add element bridge v6agent drops_spoof { "gone0" counter packets 1 bytes 60 }']);
    const ra = async (device: string) => (await firewall.counters()).find((c) => c.device === device)?.ra.packets;
    expect(await ra("vnet1")).toBe(3);
    expect(await ra("vnet2")).toBe(0);
    await firewall.upsertPort({ ...port("vnet1", 1), ipv6: ["2001:db8:1:1::99"] } as GuestPort);
    expect(await ra("vnet1")).toBe(3);
    // Reconcile forgets the count of a port that no longer exists.
    expect(
      (
        await firewall.reconcile({
          ...desired,
          ports: desired.ports.map((p) => (p.device === "vnet1" ? { ...port("vnet1", 1), ipv6: ["2001:db8:1:1::99"] } : p)),
        } as never)
      ).changed,
    ).toBe(true);
    expect((await ns.exec("nft", ["list", "set", "bridge", "v6agent", "drops_spoof"])).stdout).not.toContain("gone0");
    await firewall.removePort("vnet1");
    await firewall.upsertPort(port("vnet1", 1));
    expect(await ra("vnet1")).toBe(0);
  });

  it("builds a table of many ports in batches of whole ports, and repairs many ports the same way", async () => {
    const count = 2 * PORTS_PER_TRANSACTION + 50;
    const many: FirewallState = {
      ...desired,
      ports: Array.from({ length: count }, (_, index) => {
        const hex = (value: number) => value.toString(16).padStart(2, "0");
        return {
          device: `vnet${index}`,
          bridge: "br0",
          mac: `52:54:00:02:${hex(index >> 8)}:${hex(index & 0xff)}`,
          linkLocals: [`fe80::5054:ff:fe02:${(index + 1).toString(16)}`],
          ipv6: [`2001:db8:1:2::${(index + 1).toString(16)}`],
          ipv4: [],
        } as unknown as GuestPort;
      }),
    };
    const before = await rulesetGeneration(ns.name);
    expect((await firewall.reconcile(many)).addedPorts).toHaveLength(count);
    // One commit per batch: the structure with the first batch, then two more (no chain per port).
    expect(await rulesetGeneration(ns.name)).toBe(before + 3);
    const live = await firewall.readLive();
    expect(live.ports.map((p) => p.device).sort()).toEqual(many.ports.map((p) => p.device).sort());
    const guestPorts = (await ns.exec("nft", ["list", "set", "bridge", "v6agent", "guest_ports"])).stdout;
    expect((await ns.exec("nft", ["list", "table", "bridge", "v6agent"])).stdout).not.toMatch(/chain port_/);
    for (const p of many.ports) expect(guestPorts).toContain(`"${p.device}"`);
    expect((await firewall.reconcile(many)).changed).toBe(false);

    // A per-port set emptied by hand: each port is rewritten whole, again in batches.
    await ns.exec("nft", ["flush set bridge v6agent port_mac"]);
    const flushed = await rulesetGeneration(ns.name);
    expect((await firewall.reconcile(many)).updatedPorts).toHaveLength(count);
    expect(await rulesetGeneration(ns.name)).toBe(flushed + 3);
    expect((await firewall.reconcile(many)).changed).toBe(false);
  });
});

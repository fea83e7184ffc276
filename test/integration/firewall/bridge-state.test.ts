import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eui64LinkLocal } from "../../../src/addressing/index.js";
import {
  AttackHost,
  attackerAddress,
  attackerMac,
  gateway,
  solicitedNode,
  victimAddress,
  victimMac,
  waitFor,
} from "../../support/attacks/host.js";
import { type AttackParams, sendAttack } from "../../support/attacks.js";
import { skipReason } from "../../support/requirements.js";

const skip = skipReason({ root: true, commands: ["nft", "ebtables", "ip6tables", "dnsmasq", "dhclient", "bridge", "/usr/bin/python3"] });

/** An address the victim's port may use besides its lease: the victim brings it up during an attack. */
const extraAddress = "2001:db8:1:1::20";
const controlAddress = "2001:db8:1:1::21";

/**
 * The attacks of issue 16 judged where they do their harm: the victim's DAD state, the bridge's
 * FDB (where it learned each MAC) and MDB (its multicast memberships and router ports), and
 * the victim's reachability. Each effect is also shown to happen where nothing filters (from
 * the trusted router port), so the checks can fail.
 *
 * Not provable on this kernel: it has no bridge VLAN filtering and no 802.1Q module, so
 * per-VLAN FDB/MDB entries are not exercised (tagged frames from guests are dropped outright).
 */
describe.skipIf(skip !== undefined).each(["nft", "xtables"] as const)("%s backend: what the bridge and the victim keep", (backend) => {
  const lab = new AttackHost({ backend });
  const attacker = (overrides: Partial<AttackParams>): AttackParams => ({
    src_mac: attackerMac,
    src_ll: eui64LinkLocal(attackerMac),
    src_ip: attackerAddress,
    ...overrides,
  });

  beforeAll(async () => {
    await lab.start();
    // The bridge snoops MLD, as a Linux bridge does by default; make it say so.
    await lab.host.exec("ip", ["link", "set", lab.bridge, "type", "bridge", "mcast_snooping", "1"]);
    expect(await lab.victim.requestAddress()).toContain(victimAddress);
    expect(await lab.attacker.requestAddress()).toContain(attackerAddress);
    await lab.firewall.upsertPort({
      ...lab.port(lab.victimPort, victimMac, victimAddress),
      ipv6: [victimAddress, extraAddress, controlAddress],
    } as never);
  });

  afterAll(async () => {
    await lab.destroy();
  });

  /** The victim's address flags (`dadfailed`, `tentative`) as `ip -j addr` shows them. */
  const flagsOf = async (address: string) => {
    const links = await lab.victim.netns.ipJson<{ addr_info?: Record<string, unknown>[] }[]>(["-6", "addr", "show", "dev", "eth0"]);
    const info = (links[0]?.addr_info ?? []).find((a) => a.local === address);
    return { present: info !== undefined, dadfailed: info?.dadfailed === true, tentative: info?.tentative === true };
  };

  it("keeps the victim's DAD of its own new address while the attacker claims it from ::", async () => {
    const before = await lab.countersOf(lab.attackerPort);
    // The attacker answers every DAD probe for the address for 4 s; the victim brings it up meanwhile.
    const attack = sendAttack(lab.attacker.netns.name, "eth0", "dad-deny", attacker({ target: extraAddress, count: 80, interval: 0.05 }));
    await new Promise((resolve) => setTimeout(resolve, 500));
    await lab.victim.netns.exec("ip", ["-6", "addr", "add", `${extraAddress}/64`, "dev", "eth0"]);
    await attack;
    await waitFor(async () => !(await flagsOf(extraAddress)).tentative, 5000);
    expect(await flagsOf(extraAddress)).toEqual({ present: true, dadfailed: false, tentative: false });
    expect((await lab.countersOf(lab.attackerPort)).spoof.packets).toBeGreaterThan(before.spoof.packets);
    // The address works: the router reaches it.
    await lab.routerNs.exec("ping", ["-6", "-c", "1", "-W", "5", extraAddress]);
  });

  it("(control) the same claim from the unfiltered router port makes the victim's DAD fail", async () => {
    const claim = sendAttack(lab.routerNs.name, "eth0", "dad-deny", {
      src_mac: lab.routerMac,
      src_ll: lab.routerLinkLocal,
      target: controlAddress,
      count: 80,
      interval: 0.05,
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    await lab.victim.netns.exec("ip", ["-6", "addr", "add", `${controlAddress}/64`, "dev", "eth0"]);
    await claim;
    await waitFor(async () => (await flagsOf(controlAddress)).dadfailed, 5000);
    await lab.victim.netns.exec("ip", ["-6", "addr", "del", `${controlAddress}/64`, "dev", "eth0"]);
  });

  it("keeps the router's MAC on the router's port in the FDB while the attacker sends with it, and the victim's pings answered", async () => {
    // The victim talks to the router all along: the bridge has learned both.
    await lab.victim.netns.exec("ping", ["-6", "-c", "2", "-W", "3", gateway]);
    expect((await lab.fdb()).get(lab.routerMac)).toBe(lab.routerPort);
    const before = await lab.countersOf(lab.attackerPort);
    const attack = sendAttack(
      lab.attacker.netns.name,
      "eth0",
      "spoof-router-mac",
      attacker({ router_mac: lab.routerMac, count: 60, interval: 0.05 }),
    );
    const pings = lab.victim.netns.exec("ping", ["-6", "-c", "10", "-i", "0.25", "-W", "2", gateway], { okExitCodes: [0, 1] });
    // Read during the attack: where the bridge says the router is.
    const samples: (string | undefined)[] = [];
    for (let i = 0; i < 20; i++) {
      samples.push((await lab.fdb()).get(lab.routerMac));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await attack;
    const ping = await pings;
    expect(samples.filter((port) => port !== lab.routerPort)).toEqual([]);
    expect(ping.stdout).toMatch(/ 0% packet loss/);
    expect((await lab.countersOf(lab.attackerPort)).spoof.packets).toBeGreaterThan(before.spoof.packets);
  });

  it("keeps the attacker's port from becoming the bridge's multicast router, and the victim's memberships and reachability, under MLD queries", async () => {
    const group = solicitedNode(victimAddress);
    // The victim's own MLD reports made its memberships (reports from its own addresses pass).
    await waitFor(async () => (await lab.mdb()).groups.some((g) => g.port === lab.victimPort && g.group === group), 20_000);
    const before = await lab.countersOf(lab.attackerPort);
    await sendAttack(lab.attacker.netns.name, "eth0", "mld-query", attacker({}));
    await sendAttack(lab.attacker.netns.name, "eth0", "mld-query-specific", attacker({ group, count: 5 }));
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const mdb = await lab.mdb();
    expect(mdb.routers).not.toContain(lab.attackerPort);
    expect(mdb.groups).toContainEqual({ port: lab.victimPort, group });
    expect((await lab.countersOf(lab.attackerPort)).mld.packets).toBeGreaterThan(before.mld.packets);
    // The router can still resolve the victim from scratch (its NS goes to the victim's group).
    await lab.routerNs.exec("ip", ["-6", "neigh", "flush", "dev", "eth0"]);
    const ping = await lab.routerNs.exec("ping", ["-6", "-c", "5", "-i", "0.3", "-W", "2", victimAddress], { okExitCodes: [0, 1] });
    expect(ping.stdout).toMatch(/ 0% packet loss/);
  });

  it("(control) the same general query from the unfiltered router port does make that port the bridge's multicast router", async () => {
    // What the attacker's query would have done to its own port. (Expiring another port's
    // membership by a group-specific query did not reproduce on this kernel: the bridge's
    // snooping sees only multicast-addressed queries, which the victim hears and answers too,
    // so that effect is judged only by the membership staying above.)
    await sendAttack(lab.routerNs.name, "eth0", "mld-query", { src_mac: lab.routerMac, src_ll: lab.routerLinkLocal });
    await waitFor(async () => (await lab.mdb()).routers.includes(lab.routerPort), 5000);
  });
});

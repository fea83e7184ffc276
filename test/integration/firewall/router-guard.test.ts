import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eui64LinkLocal, type Mac, parseMac } from "../../../src/addressing/index.js";
import { AttackHost, victimAddress, victimMac, waitFor } from "../../support/attacks/host.js";
import { type AttackKind, type AttackParams, sendAttack } from "../../support/attacks.js";
import { skipReason } from "../../support/requirements.js";

const skip = skipReason({ root: true, commands: ["nft", "ebtables", "ip6tables", "dnsmasq", "dhclient", "/usr/bin/python3"] });

/**
 * The router-side guard (issue 16): the host's trusted port leads to a switch where the real
 * router (dnsmasq) sits next to a second, rogue "router" (another host's guest, say). Only when
 * the network names its router are RAs and DHCPv6 server messages from the uplink judged: from
 * the router's MAC and link-local, with the M flag, announcing only the network's /64.
 */
describe.skipIf(skip !== undefined).each(["nft", "xtables"] as const)("%s backend: the uplink's router guard", (backend) => {
  const lab = new AttackHost({ backend, uplinkSwitch: true });
  let rogueMac: Mac;
  const rogue = (kind: AttackKind, params: Partial<AttackParams> = {}) =>
    sendAttack(lab.rogueNs?.name as string, "eth0", kind, {
      src_mac: rogueMac,
      src_ll: eui64LinkLocal(rogueMac),
      victim_mac: victimMac,
      victim_ll: eui64LinkLocal(victimMac),
      prefix: "2001:db8:bad::",
      managed: true,
      ...params,
    });
  /** The rogue speaking as the real router: its MAC and link-local. */
  const asRouter = (params: Partial<AttackParams>): Partial<AttackParams> => ({
    src_mac: lab.routerMac,
    src_ll: lab.routerLinkLocal,
    ...params,
  });
  const rogueDrops = async () => (await lab.firewall.counters()).find((c) => c.device === lab.routerPort)?.rogueRouter.packets ?? 0;
  const victimRouters = async () => (await lab.victim.defaultRoutes()).map((r) => r.gateway);
  const rogueAddresses = async () => (await lab.victim.addresses()).map((a) => a.address).filter((a) => a.startsWith("2001:db8:bad:"));

  beforeAll(async () => {
    await lab.start();
    rogueMac = parseMac(
      (await (lab.rogueNs as NonNullable<typeof lab.rogueNs>).ipJson<{ address: string }[]>(["link", "show", "eth0"]))[0]?.address,
    );
    await lab.firewall.ensureBridge(lab.managedBridge(lab.routerPolicy()));
  });

  afterAll(async () => {
    await lab.destroy();
  });

  it("passes the named router: its RAs give the victim its default route, its DHCPv6 its lease", async () => {
    expect(await lab.victim.requestAddress()).toContain(victimAddress);
    await waitFor(async () => (await victimRouters()).includes(lab.routerLinkLocal), 30_000);
    expect((await lab.firewall.readLive()).bridges[0]?.router).toEqual(lab.routerPolicy());
    // (dnsmasq sends its first RAs from its global address while its link-local is still
    // tentative; receivers ignore those (RFC 4861 §6.1.2), and the guard drops them.)
  });

  // The last column: whether the drop is counted. ip6tables drops a first fragment whose header
  // chain it cannot read without running a rule (a "hotdrop"), so xtables cannot count that one.
  const dropped: [string, AttackKind, () => Partial<AttackParams>, boolean][] = [
    ["a second router's RA", "ra", () => ({}), true],
    ["a second router's RA flood", "ra-flood", () => ({ count: 10 }), true],
    ["an RA with the router's MAC but another link-local", "ra", () => ({ src_mac: lab.routerMac }), true],
    ["an RA as the router without the M flag", "ra", () => asRouter({ managed: false, prefix: "2001:db8:1:1::" }), true],
    ["an RA as the router announcing another /64", "ra", () => asRouter({}), true],
    [
      "an RA as the router announcing another /64 after MTU, RDNSS and DNSSL options",
      "ra",
      () => asRouter({ ra_options: ["mtu", "rdnss", "dnssl"] }),
      true,
    ],
    ["an RA as the router behind a destination-options header", "ra-dstopt", () => asRouter({}), true],
    ["an RA as the router split so its ICMPv6 header is in the second fragment", "ra-frag", () => asRouter({}), backend === "nft"],
    ["a second router's DHCPv6 Advertise", "dhcp6-advertise", () => ({}), true],
    ["a second router's DHCPv6 Reply", "dhcp6-reply", () => ({}), true],
  ];

  it.each(dropped)("drops %s", async (_name, kind, params, counted) => {
    const before = await rogueDrops();
    expect(await rogue(kind, params())).toBeGreaterThan(0);
    if (counted) await waitFor(async () => (await rogueDrops()) > before);
    else await new Promise((resolve) => setTimeout(resolve, 2000));
    // Judged at the victim too: no second router, no address from another /64 (the RAs set A).
    expect(await victimRouters()).toEqual([lab.routerLinkLocal]);
    expect(await rogueAddresses()).toEqual([]);
  });

  it("passes an RA from the router with the M flag and only its /64, whatever options come before the prefix", async () => {
    const before = await rogueDrops();
    await rogue("ra", asRouter({ prefix: "2001:db8:1:1::", ra_options: ["mtu", "rdnss", "dnssl"] }));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await rogueDrops()).toBe(before);
    expect(await victimRouters()).toEqual([lab.routerLinkLocal]);
  });

  it("(control) without a named router, nothing from the uplink is judged: the second router's RA reaches the victim", async () => {
    await lab.firewall.ensureBridge(lab.managedBridge());
    expect((await lab.firewall.readLive()).bridges[0]?.router).toBeUndefined();
    const before = await rogueDrops();
    await rogue("ra");
    await waitFor(async () => (await victimRouters()).includes(eui64LinkLocal(rogueMac)), 10_000);
    expect(await rogueDrops()).toBe(before);
  });
});

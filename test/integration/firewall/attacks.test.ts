import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eui64LinkLocal, parseIpv6Network, parseMac } from "../../../src/addressing/index.js";
import { createFirewall } from "../../../src/firewall/index.js";
import type { Firewall, GuestPort, PortCounters } from "../../../src/firewall/model.js";
import { NetnsGuest } from "../../../src/lab/guest-netns.js";
import { uniqueSuffix } from "../../../src/lab/names.js";
import { Netns, vethBetween } from "../../../src/lab/netns.js";
import { Router } from "../../../src/lab/router.js";
import { type AttackKind, attackOn, sendAttack } from "../../support/attacks.js";
import { skipReason } from "../../support/requirements.js";

const skip = skipReason({ root: true, commands: ["nft", "ebtables", "ip6tables", "dnsmasq", "dhclient", "/usr/bin/python3"] });
const network = parseIpv6Network("2001:db8:1:1::/64");
const victimMac = parseMac("52:54:00:00:10:0a");
const attackerMac = parseMac("52:54:00:00:10:0b");
const victimAddress = "2001:db8:1:1::10";
const attackerAddress = "2001:db8:1:1::11";

// One real "host": a bridge with a dnsmasq router on its trusted port and two dhclient guests.
describe.skipIf(skip !== undefined).each(["nft", "xtables"] as const)("%s backend under attack", (backend) => {
  const sfx = uniqueSuffix();
  const bridge = `fb${sfx}`;
  const routerPort = `fr${sfx}`;
  const victimPort = `gv${sfx}`;
  const attackerPort = `ga${sfx}`;
  let host: Netns;
  let routerNs: Netns;
  let router: Router;
  let victim: NetnsGuest;
  let attacker: NetnsGuest;
  let firewall: Firewall;
  let workDir: string;
  let routerLinkLocal: string;

  const port = (device: string, mac: typeof victimMac, address: string): GuestPort =>
    ({ device, bridge, mac, linkLocals: [eui64LinkLocal(mac)], ipv6: [address], ipv4: [], network: network.cidr }) as unknown as GuestPort;

  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), "v6fw-"));
    host = await Netns.create("fwh");
    routerNs = await Netns.create("fwr");
    await host.exec("ip", ["link", "add", bridge, "type", "bridge"]);
    await host.exec("ip", ["link", "set", bridge, "up"]);
    firewall = await createFirewall({ backend, netns: host.name });
    await firewall.reconcile({
      bridges: [{ name: bridge, trustedPorts: [routerPort], guestPortPatterns: ["g*"] } as never],
      ports: [port(victimPort, victimMac, victimAddress), port(attackerPort, attackerMac, attackerAddress)],
    });
    await vethBetween(host, routerPort, routerNs, "eth0");
    await host.exec("ip", ["link", "set", routerPort, "master", bridge]);
    routerLinkLocal = eui64LinkLocal(parseMac((await routerNs.ipJson<{ address: string }[]>(["link", "show", "eth0"]))[0]?.address));
    router = await Router.start({
      netns: routerNs,
      interface: "eth0",
      network,
      gateway: "2001:db8:1:1::1",
      workDir,
      reservations: [
        { mac: victimMac, address: victimAddress },
        { mac: attackerMac, address: attackerAddress },
      ],
    });
    victim = await NetnsGuest.create({ mac: victimMac, host, port: victimPort, bridge, workDir, prefix: "fwv" });
    attacker = await NetnsGuest.create({ mac: attackerMac, host, port: attackerPort, bridge, workDir, prefix: "fwa" });
  });

  afterAll(async () => {
    await victim?.destroy();
    await attacker?.destroy();
    await router?.stop();
    await routerNs?.destroy();
    await host?.destroy();
    rmSync(workDir, { recursive: true, force: true });
  });

  it("lets the legitimate guest get its reserved address and the router's default route", async () => {
    expect(await victim.requestAddress()).toContain(victimAddress);
    await waitFor(async () => (await victim.defaultRoutes()).some((r) => r.gateway === routerLinkLocal));
    expect((await victim.defaultRoutes()).map((r) => r.gateway)).toEqual([routerLinkLocal]);
    expect(await attacker.requestAddress()).toContain(attackerAddress);
  });

  const attacks: [AttackKind, keyof Omit<PortCounters, "device">][] = [
    ["ra", "ra"],
    ["ra-hbh", "ra"],
    ["ra-dstopt", "ra"],
    ["ra-many-ext", "ra"],
    ["ra-flood", "ra"],
    ["redirect", "ra"],
    ["ra-frag", "fragment"],
    // ebtables' ip6 match skips extension headers (fragment included), so on xtables an atomic
    // fragment RA is already dropped, and counted, as an RA at L2.
    ["ra-atomic-frag", backend === "nft" ? "fragment" : "ra"],
    ["dhcp6-advertise", "dhcpv6Server"],
    ["dhcp6-reply", "dhcpv6Server"],
    ["dhcp6-reply-other-port", "dhcpv6Server"],
    ["na-spoof", "spoof"],
    ["na-flood", "spoof"],
    ["spoof-mac", "spoof"],
    ["spoof-ip", "spoof"],
    ["dhcp4-offer", "ipv4"],
    ["arp-spoof", "ipv4"],
  ];

  it.each(attacks)("drops %s from the attacker and counts it as %s", async (kind, counter) => {
    const before = await countersOf(firewall, attackerPort);
    const sent = await sendAttack(
      attacker.netns.name,
      "eth0",
      kind,
      attackOn(kind, attackerMac, { mac: victimMac, address: victimAddress }),
    );
    expect(sent).toBeGreaterThan(0);
    // The drop counter is the proof the frames reached the bridge and were stopped there.
    await waitFor(async () => (await countersOf(firewall, attackerPort))[counter].packets > before[counter].packets);
    const after = await countersOf(firewall, attackerPort);
    expect(after[counter].packets).toBeGreaterThan(before[counter].packets);
    // The victim saw none of it: only the router's default route, no rogue prefix or lease, and
    // no neighbour entry pointing at the attacker's MAC.
    expect((await victim.defaultRoutes()).map((r) => r.gateway)).toEqual([routerLinkLocal]);
    const addresses = (await victim.addresses()).map((a) => a.address);
    expect(addresses).toContain(victimAddress);
    expect(
      addresses.filter((a) => a.startsWith("2001:db8:bad:") || (a.startsWith("2001:db8:1:1::") === false && a.startsWith("2001:"))),
    ).toEqual([]);
    const poisoned = (await victim.neighbours()).filter(
      (n) => n.mac === attackerMac && n.address !== eui64LinkLocal(attackerMac) && n.address !== attackerAddress,
    );
    expect(poisoned).toEqual([]);
  });

  it("drops everything from a port it has no rules for (fail closed)", async () => {
    const stranger = await NetnsGuest.create({
      mac: parseMac("52:54:00:00:10:0c"),
      host,
      port: `gu${sfx}`,
      bridge,
      workDir,
      prefix: "fwu",
    });
    try {
      await stranger.waitForLinkLocal();
      const sent = await sendAttack(stranger.netns.name, "eth0", "ra", {
        src_mac: "52:54:00:00:10:0c",
        src_ll: eui64LinkLocal(parseMac("52:54:00:00:10:0c")),
      });
      expect(sent).toBe(1);
      const ping = await stranger.netns.exec("ping", ["-6", "-c", "2", "-W", "2", `${routerLinkLocal}%eth0`], { okExitCodes: [0, 1] });
      expect(ping.exitCode).toBe(1);
      expect((await victim.defaultRoutes()).map((r) => r.gateway)).toEqual([routerLinkLocal]);
    } finally {
      await stranger.destroy();
    }
  });

  it("still serves the legitimate guest after the attacks", async () => {
    expect((await victim.addresses()).map((a) => a.address)).toContain(victimAddress);
    await victim.netns.exec("ping", ["-6", "-c", "1", "-W", "5", "2001:db8:1:1::1"]);
  });
});

async function countersOf(firewall: Firewall, device: string): Promise<PortCounters> {
  const found = (await firewall.counters()).find((c) => c.device === device);
  if (found === undefined) throw new Error(`no counters for ${device}`);
  return found;
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

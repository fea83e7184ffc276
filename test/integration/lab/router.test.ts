import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { duidLl, eui64LinkLocal, parseIpv6Network, parseMac } from "../../../src/addressing/index.js";
import { NetnsGuest } from "../../../src/lab/guest-netns.js";
import { Netns, vethBetween } from "../../../src/lab/netns.js";
import { Router } from "../../../src/lab/router.js";
import { skipReason } from "../../support/requirements.js";
import { until } from "../../support/wait.js";

const skip = skipReason({ root: true, commands: ["ip", "dnsmasq", "dhclient"] });

describe.skipIf(skip !== undefined)("lab router (dnsmasq RA + DHCPv6 by DUID-LL) and netns guests", () => {
  const network = parseIpv6Network("2001:db8:77:1::/64");
  const macA = parseMac("52:54:00:77:00:0a");
  const macB = parseMac("52:54:00:77:00:0b");
  let workDir: string;
  let host: Netns;
  let routerNs: Netns;
  let router: Router;
  const guests: NetnsGuest[] = [];

  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), "v6agent-router-"));
    host = await Netns.create("v6h");
    routerNs = await Netns.create("v6r");
    await host.exec("ip", ["link", "add", "br0", "type", "bridge"]);
    await host.sysctl("net.ipv6.conf.br0.disable_ipv6", "1");
    await host.exec("ip", ["link", "set", "br0", "up"]);
    await vethBetween(host, "vr0", routerNs, "eth0");
    await host.exec("ip", ["link", "set", "vr0", "master", "br0"]);
    await host.sysctl("net.ipv6.conf.vr0.disable_ipv6", "1");
    router = await Router.start({
      netns: routerNs,
      interface: "eth0",
      network,
      gateway: "2001:db8:77:1::1",
      workDir,
      reservations: [{ mac: macA, address: "2001:db8:77:1::a" }],
    });
  });

  afterAll(async () => {
    await Promise.all(guests.map((guest) => guest.destroy()));
    await router?.stop();
    await routerNs?.destroy();
    await host?.destroy();
    rmSync(workDir, { recursive: true, force: true });
  });

  it("hands the reserved address to the guest whose DUID-LL matches, with the router as default route", async () => {
    const guest = await NetnsGuest.create({ mac: macA, host, port: "vnetA", bridge: "br0", workDir });
    guests.push(guest);
    expect(await guest.waitForLinkLocal()).toBe(eui64LinkLocal(macA));
    expect(await guest.requestAddress()).toEqual(["2001:db8:77:1::a"]);
    const routerLinkLocal = (
      await routerNs.ipJson<{ addr_info: { local: string; scope: string }[] }[]>(["-6", "addr", "show", "dev", "eth0"])
    )[0]?.addr_info.find((a) => a.scope === "link")?.local;
    // The RA answering the guest's RS may land after dhclient has bound: wait for the route.
    const defaults = await until(
      async () => {
        const routes = await guest.defaultRoutes();
        return routes.length > 0 ? routes : undefined;
      },
      "the router's default route",
      15_000,
    );
    expect(defaults.map((route) => route.gateway)).toEqual([routerLinkLocal]);
    expect(router.leases()).toEqual([expect.objectContaining({ address: "2001:db8:77:1::a", duid: duidLl(macA) })]);
  });

  it("gives an unreserved guest nothing, and its reservation once added", async () => {
    const guest = await NetnsGuest.create({ mac: macB, host, port: "vnetB", bridge: "br0", workDir });
    guests.push(guest);
    await expect(guest.requestAddress(4)).rejects.toThrow();
    expect(await guest.globalAddresses()).toEqual([]);
    await router.reserve({ mac: macB, address: "2001:db8:77:1::b" });
    expect(await guest.requestAddress()).toEqual(["2001:db8:77:1::b"]);
  });

  it("refuses a reservation outside the /64 without touching the running list", async () => {
    await expect(router.reserve({ mac: macB, address: "2001:db8:78:1::b" })).rejects.toThrow(/outside the network 2001:db8:77:1::\/64/);
    expect(router.currentReservations().map((r) => r.address)).toContain("2001:db8:77:1::b");
  });
});

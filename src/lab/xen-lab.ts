import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { duidLl, eui64LinkLocal, parseIpv6Network } from "../addressing/index.js";
import { XapiConnection } from "../hypervisor/xenserver/xapi-connection.js";
import type { VifReport } from "../protocol/schemas.js";
import { NetnsGuest } from "./guest-netns.js";
import type { LabOptions } from "./lab-options.js";
import { waitForJsonLine, XAPI_SIM_PATH } from "./lab-processes.js";
import type { LabGuestResult, LabResult } from "./lab-result.js";
import { HOST_ID, LAB_NETWORK, LAB_ROUTER, type LabGuest, type LabSession, labGuests, NETWORK_ID, ROGUE_NETWORK } from "./lab-session.js";
import { LAB_PREFIX } from "./lab-state.js";
import {
  inNetwork,
  linkLocalOf,
  observedDuids,
  recordDhclients,
  reservationsFrom,
  startAgentOnNetwork,
  summarise,
  waitForDrops,
} from "./lab-steps.js";
import { type Netns, vethBetween } from "./netns.js";
import { Router } from "./router.js";

// ------------------------------------------------------------------ XenServer (simulated dom0)

export async function runXenLab(session: LabSession, options: LabOptions, started: number): Promise<LabResult> {
  const network = parseIpv6Network(LAB_NETWORK);
  const rogue = parseIpv6Network(ROGUE_NETWORK);
  const guests = labGuests(options.guests);
  const attacker = guests.find((guest) => guest.role === "attacker") as LabGuest;
  const victims = guests.filter((guest) => guest.role === "victim");
  const unconfigured = guests.find((guest) => guest.role === "duid-llt") as LabGuest;

  const guestNamespaces = new Map<string, Netns>();
  const { dom0, router } = await session.step("namespaces: dom0, router, guests", async () => {
    const dom0 = await session.namespace(HOST_ID);
    const router = await session.namespace(`${LAB_PREFIX}-rt`);
    // dom0's physical network: xenbr0 with eth0 (the management PIF) towards the router.
    await dom0.exec("ip", ["link", "add", "xenbr0", "type", "bridge"]);
    await dom0.exec("ip", ["link", "set", "xenbr0", "up"]);
    await vethBetween(dom0, "eth0", router, "eth0");
    await dom0.exec("ip", ["link", "set", "eth0", "master", "xenbr0"]);
    await dom0.sysctl("net.ipv6.conf.xenbr0.disable_ipv6", "1");
    for (const guest of guests) guestNamespaces.set(guest.name, await session.namespace(guest.name));
    return { dom0, router };
  });

  const sim = await session.step(
    "XAPI simulator (dom0 plays the VIFs)",
    async () => {
      const { handle, log } = session.child("xapi-sim", XAPI_SIM_PATH, [
        JSON.stringify({ dom0: dom0.name, vms: guests.map((guest) => ({ name: guest.name, guestNetns: guest.name })) }),
      ]);
      return waitForJsonLine<{ url: string; vms: { name: string; uuid: string }[] }>(handle, log, ["url", "vms"], "the XAPI simulator");
    },
    (value) => value.url,
  );
  const uuidOf = new Map(sim.vms.map((vm) => [vm.name, vm.uuid]));
  const passwordFile = join(session.dir, "xapi-password");
  writeFileSync(passwordFile, "xenroot\n", { mode: 0o600 });

  const { mgmt, ensured } = await startAgentOnNetwork(session, options, "xenserver", {
    hypervisor: [
      "kind: xenserver",
      "xapi:",
      `  url: ${JSON.stringify(sim.url)}`,
      "  username: root",
      `  passwordFile: ${JSON.stringify(passwordFile)}`,
    ],
    uplink: "eth0",
    netns: dom0.name,
  });
  session.record.firewall = { backend: options.backend, netns: dom0.name, bridges: [ensured.bridge] };

  await session.step(`nic.plug ×${guests.length}`, async () => {
    for (const guest of guests) {
      await mgmt.call(HOST_ID, "nic.plug", {
        vmUuid: uuidOf.get(guest.name),
        networkId: NETWORK_ID,
        mac: guest.mac,
        ipv6: [guest.expected],
      });
    }
  });
  const routerWork = join(session.dir, "router");
  mkdirSync(routerWork, { recursive: true });
  const realRouter = await session.step("router: dnsmasq RA (M flag) + DHCPv6 reservations from vif.report", async () => {
    const reports = await mgmt.waitForVifReports(
      guests.map((guest) => guest.mac),
      () => true,
      30_000,
    );
    return Router.start({
      netns: router,
      interface: "eth0",
      network,
      gateway: LAB_ROUTER,
      workDir: routerWork,
      reservations: reservationsFrom(reports, guests),
      raIntervalSeconds: 4,
      detached: true,
    });
  });
  session.record.pids.push({ name: "router-dnsmasq", pid: realRouter.pid });
  session.routers.push(realRouter);

  // The lab plays the cloud here, which starts VMs through XAPI itself (no event watching, so
  // no long-poll keeps this process alive afterwards).
  const xapi = new XapiConnection({ url: sim.url, auth: { user: "root", password: "xenroot" } });
  await xapi.connect();
  let reports: Map<string, VifReport>;
  try {
    reports = await session.step("start VMs (vif<domid>.0 on dom0's bridge, rules first)", async () => {
      for (const guest of guests) {
        const ref = await xapi.call<string>("VM.get_by_uuid", uuidOf.get(guest.name));
        await xapi.call("VM.start", ref, false, false);
      }
      return mgmt.waitForVifReports(
        guests.map((guest) => guest.mac),
        (report) => report.state === "protected",
        30_000,
      );
    });
  } finally {
    await xapi.close();
  }
  const netnsGuests = new Map<string, NetnsGuest>();
  const guestWork = join(session.dir, "guests");
  mkdirSync(guestWork, { recursive: true });
  for (const guest of guests) {
    const netns = guestNamespaces.get(guest.name) as Netns;
    netnsGuests.set(
      guest.name,
      NetnsGuest.adopt(netns, { mac: guest.mac, host: dom0, port: reports.get(guest.mac)?.device ?? "", workDir: guestWork }),
    );
  }

  const asking = guests.filter((guest) => guest !== unconfigured);
  const obtained = await session.step("DHCPv6: dhclient -6 -D LL in every guest, plain dhclient -6 (DUID-LLT) in one", async () => {
    const results = await Promise.all(asking.map((guest) => (netnsGuests.get(guest.name) as NetnsGuest).requestAddress(20)));
    await (netnsGuests.get(unconfigured.name) as NetnsGuest).startDefaultDhclient();
    recordDhclients(session, netnsGuests);
    return new Map(asking.map((guest, index) => [guest.name, results[index] as string[]]));
  });
  const duids = await session.step("DHCPv6 identity: the DUID each guest sends, as the agent reports it", () =>
    observedDuids(
      mgmt,
      guests.map((guest) => guest.mac),
      30_000,
    ),
  );

  const routerLinkLocal = await linkLocalOf(router, "eth0");
  const attackerGuest = netnsGuests.get(attacker.name) as NetnsGuest;
  const attackerLinkLocal = eui64LinkLocal(attacker.mac);
  const rogueWork = join(session.dir, "rogue");
  mkdirSync(rogueWork, { recursive: true });
  const rogueRouter = await session.step(`attack: rogue RA + DHCPv6 (${ROGUE_NETWORK}) from ${attacker.name}`, async () => {
    const rogueRouterProcess = await Router.start({
      netns: attackerGuest.netns,
      interface: "eth0",
      network: rogue,
      gateway: `${rogue.prefix}1`,
      workDir: rogueWork,
      reservations: victims.map((victim, index) => ({ mac: victim.mac, address: `${rogue.prefix}${(0xbad0 + index).toString(16)}` })),
      raIntervalSeconds: 4,
    });
    session.record.pids.push({ name: "rogue-dnsmasq", pid: rogueRouterProcess.pid });
    // Victims ask again while the rogue server is up: a fresh Solicit it would answer.
    for (const victim of victims) (netnsGuests.get(victim.name) as NetnsGuest).stopDhclient();
    await new Promise((resolve) => setTimeout(resolve, 500));
    await Promise.all(victims.map((victim) => (netnsGuests.get(victim.name) as NetnsGuest).requestAddress(20)));
    recordDhclients(session, netnsGuests);
    return rogueRouterProcess;
  });
  const vifs = await session.step("drop counters (host.diagnose)", () => waitForDrops(mgmt, attacker.mac, 20_000));
  await rogueRouter.stop();

  const rows: LabGuestResult[] = [];
  for (const guest of guests) {
    const netnsGuest = netnsGuests.get(guest.name) as NetnsGuest;
    const addresses = await netnsGuest.globalAddresses();
    const vif = vifs.get(guest.mac);
    const report = reports.get(guest.mac) as VifReport;
    const row: LabGuestResult = {
      name: guest.name,
      role: guest.role,
      mac: guest.mac,
      duidLL: duidLl(guest.mac),
      linkLocal: report.linkLocal,
      device: report.device ?? vif?.device,
      expected: guest.expected,
      obtained: guest.role === "attacker" ? (obtained.get(guest.name) ?? []) : addresses,
      dhcpClient: true,
      drops: vif?.drops ?? {},
      ...duids(guest.mac),
    };
    if (guest.role === "victim") {
      const routes = await netnsGuest.routes();
      row.attack = {
        rogueRouteAbsent: !routes.some((route) => route.gateway === attackerLinkLocal || inNetwork(route.destination, rogue)),
        rogueAddressAbsent: !addresses.some((address) => inNetwork(address, rogue)),
        defaultRouteKept: routes.some((route) => route.destination === "default" && route.gateway === routerLinkLocal),
        addressKept: addresses.includes(guest.expected),
        routersSeen: [...new Set(routes.filter((route) => route.destination === "default").map((route) => route.gateway ?? route.device))],
      };
    }
    rows.push(row);
  }
  return summarise(rows, options, "xenserver", ensured.bridge, started);
}

import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { duidLl, parseIpv6Network } from "../addressing/index.js";
import { run } from "../exec.js";
import type { VifReport } from "../protocol/schemas.js";
import { buildGuestImage } from "./guest-image.js";
import type { LabOptions } from "./lab-options.js";
import type { LabGuestResult, LabResult } from "./lab-result.js";
import { HOST_ID, LAB_NETWORK, LAB_ROUTER, type LabGuest, type LabSession, labGuests, NETWORK_ID, ROGUE_NETWORK } from "./lab-session.js";
import { LAB_PREFIX } from "./lab-state.js";
import { inNetwork, linkLocalOf, observedDuids, reservationsFrom, startAgentOnNetwork, summarise, waitForDrops } from "./lab-steps.js";
import { ensureLibvirtd } from "./libvirtd.js";
import { Router } from "./router.js";
import { VmConsole } from "./vm-console.js";

// ------------------------------------------------------------------ KVM (real VMs)

export async function runKvmLab(session: LabSession, options: LabOptions, started: number): Promise<LabResult> {
  const network = parseIpv6Network(LAB_NETWORK);
  const guests = labGuests(options.guests);
  const attacker = guests.find((guest) => guest.role === "attacker") as LabGuest;
  const victims = guests.filter((guest) => guest.role === "victim");
  const unconfigured = guests.find((guest) => guest.role === "duid-llt") as LabGuest;
  const uplink = `${LAB_PREFIX}-up`;

  const router = await session.step("router namespace, uplink veth, libvirtd, guest image", async () => {
    const router = await session.namespace(`${LAB_PREFIX}-rt`);
    session.record.hostLinks.push(uplink);
    session.save();
    // libvirt's taps live in the host's namespace, so the guest bridge does too; its only uplink
    // is this veth, whose peer is the router namespace's eth0 (never the machine's own uplink).
    await run("ip", ["link", "add", uplink, "type", "veth", "peer", "name", "eth0", "netns", router.name]);
    await run("ip", ["link", "set", uplink, "up"]);
    await router.exec("ip", ["link", "set", "eth0", "up"]);
    await ensureLibvirtd();
    return router;
  });
  const image = await buildGuestImage();

  const { mgmt, ensured } = await startAgentOnNetwork(session, options, "kvm", {
    // Software emulation: a nested KVM guest hangs at boot on these machines.
    hypervisor: ["kind: kvm", "uri: qemu:///system", "domainType: qemu"],
    uplink,
  });
  session.record.hostLinks.push(ensured.bridge);
  session.record.firewall = { backend: options.backend, bridges: [ensured.bridge] };
  session.save();

  const routerWork = join(session.dir, "router");
  mkdirSync(routerWork, { recursive: true });
  const realRouter = await session.step("router: dnsmasq RA (M flag) + DHCPv6", () =>
    Router.start({
      netns: router,
      interface: "eth0",
      network,
      gateway: LAB_ROUTER,
      workDir: routerWork,
      raIntervalSeconds: 4,
      detached: true,
    }),
  );
  session.record.pids.push({ name: "router-dnsmasq", pid: realRouter.pid });
  session.routers.push(realRouter);
  const routerLinkLocal = await linkLocalOf(router, "eth0");

  const consoles = new Map<string, VmConsole>();
  const deploy = async (guest: LabGuest, cmdline: string) => {
    session.record.domains.push(guest.name);
    session.save();
    await mgmt.call(HOST_ID, "vm.deploy", {
      uuid: randomUUID(),
      name: guest.name,
      memoryMiB: 256,
      vcpus: 1,
      boot: { kind: "kernel", kernel: image.kernel, initrd: image.initrd, cmdline },
      nics: [{ networkId: NETWORK_ID, mac: guest.mac, ipv6: [guest.expected] }],
    });
    consoles.set(guest.name, await VmConsole.open(guest.name));
  };
  try {
    // The attacker boots first, so its rogue dnsmasq is already sending RAs and answering
    // Solicits when the victims ask: every attack meets the agent's rules, not an empty wire.
    await session.step(`attacker VM ${attacker.name}: rogue RA + DHCPv6 (${ROGUE_NETWORK}) from boot`, async () => {
      await deploy(attacker, `${image.cmdline} v6agent.rogue=${ROGUE_NETWORK}`);
      await (consoles.get(attacker.name) as VmConsole).waitFor(
        "the rogue dnsmasq's first RA",
        (parsed) => (parsed.rogue.has("eth0") && (consoles.get(attacker.name) as VmConsole).contains("RTR-ADVERT") ? true : undefined),
        150_000,
      );
    });
    const reports = await session.step(
      `victim VMs ×${victims.length} and a DUID-LLT VM (vm.deploy), reservations from vif.report`,
      async () => {
        for (const victim of victims) await deploy(victim, image.cmdline);
        await deploy(unconfigured, `${image.cmdline} v6agent.duid=llt`);
        const reports = await mgmt.waitForVifReports(
          guests.map((guest) => guest.mac),
          (report) => report.state === "protected",
          60_000,
        );
        await realRouter.setReservations(reservationsFrom(reports, guests));
        return reports;
      },
    );
    await session.step("DHCPv6: dhclient -6 -D LL in every victim, RA default route", () =>
      Promise.all(
        victims.map((victim) =>
          (consoles.get(victim.name) as VmConsole).waitFor(
            `${victim.name}'s reserved address and default route`,
            (parsed) => {
              const net = parsed.network.get("eth0");
              return net?.addresses.includes(victim.expected) && net.routers.includes(routerLinkLocal) ? net : undefined;
            },
            150_000,
          ),
        ),
      ),
    );
    const duids = await session.step("DHCPv6 identity: the DUID each guest sends, as the agent reports it", () =>
      observedDuids(
        mgmt,
        [...victims, unconfigured].map((guest) => guest.mac),
        60_000,
      ),
    );
    // A few more rogue RAs (every 4 s) reach the victims' ports while they watch.
    const vifs = await session.step("drop counters (host.diagnose)", async () => {
      await new Promise((resolve) => setTimeout(resolve, 8000));
      return waitForDrops(mgmt, attacker.mac, 30_000);
    });

    const rows: LabGuestResult[] = guests.map((guest) => {
      const parsed = (consoles.get(guest.name) as VmConsole).parsed();
      const report = reports.get(guest.mac) as VifReport;
      const vif = vifs.get(guest.mac);
      const everAddresses = [...(parsed.everAddresses.get("eth0") ?? [])];
      const everRouters = [...(parsed.everRouters.get("eth0") ?? [])];
      const now = parsed.network.get("eth0");
      const row: LabGuestResult = {
        name: guest.name,
        role: guest.role,
        mac: guest.mac,
        duidLL: duidLl(guest.mac),
        linkLocal: parsed.linkLocal.get("eth0") ?? report.linkLocal,
        device: report.device ?? vif?.device,
        expected: guest.expected,
        obtained: guest.role === "attacker" ? [] : (now?.addresses ?? []),
        dhcpClient: guest.role !== "attacker",
        drops: vif?.drops ?? {},
        ...duids(guest.mac),
      };
      if (guest.role === "victim") {
        row.attack = {
          rogueRouteAbsent: !everRouters.some((router) => router !== routerLinkLocal),
          rogueAddressAbsent: !everAddresses.some((address) => inNetwork(address, parseIpv6Network(ROGUE_NETWORK))),
          defaultRouteKept: now?.routers.includes(routerLinkLocal) === true,
          addressKept: now?.addresses.includes(guest.expected) === true,
          routersSeen: everRouters,
        };
      }
      return row;
    });
    return summarise(rows, options, "kvm", ensured.bridge, started);
  } finally {
    // Kept beside the record for whoever explores a --keep lab (or a failed one's log).
    for (const [name, vmConsole] of consoles) {
      writeFileSync(join(session.dir, `${name}.console`), vmConsole.output());
      vmConsole.close();
    }
  }
}

// ------------------------------------------------------------------ helpers

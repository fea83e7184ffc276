import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { duidLl, eui64LinkLocal, type Mac, parseIpv6Network, parseMac } from "../../../src/addressing/index.js";
import { run } from "../../../src/exec.js";
import { createFirewall } from "../../../src/firewall/index.js";
import type { Firewall } from "../../../src/firewall/model.js";
import { removeBridge } from "../../../src/hostnet/index.js";
import { KvmHypervisor } from "../../../src/hypervisor/kvm/kvm-hypervisor.js";
import { tapNameForMac } from "../../../src/hypervisor/kvm/tap-name.js";
import { buildGuestImage, type GuestImage } from "../../../src/lab/guest-image.js";
import { ensureLibvirtd } from "../../../src/lab/libvirtd.js";
import { Router } from "../../../src/lab/router.js";
import { createLogger } from "../../../src/log.js";
import { ManagementServer, type Report } from "../../../src/mgmt/index.js";
import type { VifReport } from "../../../src/protocol/index.js";
import { type DaemonProcess, startAgentDaemon, waitFor, writeConfig } from "../../support/agent-daemon.js";
import { type GuestConsoleReader, openGuestConsole } from "../../support/guest-console.js";
import { uniqueName, uniqueSuffix } from "../../support/names.js";
import { Netns } from "../../support/netns.js";
import { skipReason } from "../../support/requirements.js";

/**
 * Issue 6's end-to-end sequence over the real channel: a ManagementServer (in this process, with
 * a token) ↔ the `v6agent run` daemon as a child process (KVM over qemu:///system with software
 * emulation, nft backend, an uplink veth whose peer is a router namespace running dnsmasq) ↔
 * libvirtd with two real tiny VMs. The test plays the cloud: it is the IPAM (chooses A's
 * address) and turns A's vif.report into the router's DHCPv6 reservation.
 *
 * The rogue VM B boots first, so its rogue dnsmasq is already answering when A boots and
 * solicits: A must still end up with exactly the reserved address and only the router as
 * default gateway, and B's port must count dropped RAs and DHCPv6 server replies.
 *
 * Shares the host namespace's `bridge v6agent` nft table (libvirt taps live there): tests that
 * do the same must not run at the same time.
 */
const skip = skipReason({
  root: true,
  commands: ["libvirtd", "virtlogd", "virsh", "qemu-system-x86_64", "dnsmasq", "ip", "nft", "stty", "sysctl", "ldd"],
});

function randomMac(): Mac {
  return parseMac(`52:54:00:${[...randomBytes(3)].map((byte) => byte.toString(16).padStart(2, "0")).join(":")}`);
}

function hex16(): string {
  return randomBytes(2).readUInt16BE(0).toString(16);
}

describe.skipIf(skip !== undefined)("agent end to end: management server ↔ v6agent run ↔ libvirt VMs ↔ router", () => {
  const token = randomBytes(16).toString("hex");
  const hostId = `e2e-${uniqueSuffix()}`;
  const networkId = `net-${uniqueSuffix()}`;
  const network = parseIpv6Network(`2001:db8:6e:${hex16()}::/64`);
  const gateway = `${network.prefix}1`;
  const addressA = `${network.prefix}a:42`;
  const roguePrefix = `2001:db8:66:${hex16()}::`;
  const uplink = uniqueName("v6up");
  const macA = randomMac();
  const macB = randomMac();
  const vmA = { uuid: randomUUID(), name: uniqueName("v6a") };
  const vmB = { uuid: randomUUID(), name: uniqueName("v6b") };
  const logger = createLogger("silent");

  let workDir: string;
  let image: GuestImage;
  let server: ManagementServer;
  let routerNs: Netns | undefined;
  let router: Router | undefined;
  let routerLinkLocal: string;
  let agent: DaemonProcess | undefined;
  let bridge: string | undefined;
  let firewall: Firewall;
  const consoles: GuestConsoleReader[] = [];
  const reservationsMade: VifReport[] = [];

  beforeAll(async () => {
    await ensureLibvirtd();
    image = await buildGuestImage();
    workDir = mkdtempSync(join(tmpdir(), "v6-agent-e2e-"));
    firewall = await createFirewall({ backend: "nft" });

    server = new ManagementServer({ tokens: [token], logger, heartbeatIntervalMs: 2_000, commandTimeoutMs: 240_000 });
    const { url } = await server.start();
    // The cloud's side: a vif.report for A (by its DUID-LL) becomes the router's reservation.
    server.on("report", (report: Report) => {
      if (report.method !== "vif.report" || report.hostId !== hostId) return;
      const vif = report.params as VifReport;
      // A "detached" report may come first (A's NIC is wanted before its VM runs); the cloud
      // reserves once the port is protected.
      if (vif.mac !== macA || vif.state !== "protected" || reservationsMade.length > 0) return;
      reservationsMade.push(vif);
      router?.reserve({ mac: macA, address: addressA }).catch(() => undefined);
    });

    routerNs = await Netns.create("v6er");
    await routerNs.exec("ip", ["link", "add", "eth0", "type", "veth", "peer", "name", uplink, "netns", "1"]);
    await run("ip", ["link", "set", uplink, "up"]);
    await routerNs.exec("ip", ["link", "set", "eth0", "up"]);
    router = await Router.start({ netns: routerNs, interface: "eth0", network, gateway, workDir, reservations: [], raIntervalSeconds: 4 });
    const links = await routerNs.ipJson<{ addr_info: { local: string; scope: string }[] }[]>(["-6", "addr", "show", "dev", "eth0"]);
    routerLinkLocal = links[0]?.addr_info.find((info) => info.scope === "link")?.local as string;

    const configPath = writeConfig(workDir, {
      hostId,
      management: { servers: [url], token, heartbeatSeconds: 2, timeoutSeconds: 10 },
      hypervisor: { kind: "kvm", uri: "qemu:///system", domainType: "qemu" },
      network: { uplink },
      firewall: { backend: "nft" },
      stateDir: join(workDir, "state"),
      logLevel: "debug",
    });
    agent = startAgentDaemon(configPath);
    await server.waitForAgent(hostId, 60_000);
  }, 240_000);

  afterAll(async () => {
    for (const reader of consoles) reader.close();
    await agent?.stop();
    const hypervisor = new KvmHypervisor({ uri: "qemu:///system", domainType: "qemu", logger });
    await hypervisor.connect().catch(() => undefined);
    for (const vm of [vmA, vmB]) await hypervisor.destroyVm(vm.uuid).catch(() => undefined);
    await hypervisor.close().catch(() => undefined);
    await firewall?.removeAll().catch(() => undefined);
    await server?.stop();
    await router?.stop();
    await routerNs?.destroy();
    await run("ip", ["link", "del", uplink], { okExitCodes: [0, 1] });
    if (bridge !== undefined) {
      const name = bridge;
      await removeBridge({ bridge: name }).catch(() => run("ip", ["link", "del", name], { okExitCodes: [0, 1] }));
    }
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  }, 120_000);

  const vifReports = (mac: Mac): VifReport[] =>
    server.reports
      .query({ hostId, method: "vif.report" })
      .map((report) => report.params as VifReport)
      .filter((vif) => vif.mac === mac);

  it("registers, ensures the /64, protects a rogue VM and a victim VM, and the victim gets exactly its reserved address", async () => {
    expect(server.agents().map((info) => info.hostId)).toContain(hostId);

    const ensured = await server.call(hostId, "network.ensure", { networkId, prefix: network.cidr, gateway });
    bridge = ensured.bridge;
    const uplinkLink = JSON.parse((await run("ip", ["-json", "link", "show", "dev", uplink])).stdout)[0];
    expect(uplinkLink.master).toBe(bridge);

    const boot = { kind: "kernel" as const, kernel: image.kernel, initrd: image.initrd };
    // B: the rogue, deployed through the agent like any guest.
    const deployedB = await server.call(hostId, "vm.deploy", {
      uuid: vmB.uuid,
      name: vmB.name,
      memoryMiB: 256,
      vcpus: 1,
      boot: { ...boot, cmdline: `${image.cmdline} v6agent.rogue=${roguePrefix}/64` },
      nics: [{ networkId, mac: macB }],
    });
    expect(deployedB.vifs).toMatchObject([{ mac: macB, state: "protected", device: tapNameForMac(macB), bridge }]);
    const consoleB = await openGuestConsole(vmB.name);
    consoles.push(consoleB);
    await waitFor("B's rogue dnsmasq", () => (consoleB.text().includes("RTR-ADVERT") ? true : undefined), 240_000);
    expect(consoleB.parsed().rogue.get("eth0")).toBe(`${roguePrefix}/64`);

    // A: the victim; the test (IPAM) chose its address.
    const deployedA = await server.call(hostId, "vm.deploy", {
      uuid: vmA.uuid,
      name: vmA.name,
      memoryMiB: 256,
      vcpus: 1,
      boot: { ...boot, cmdline: image.cmdline },
      nics: [{ networkId, mac: macA, ipv6: [addressA] }],
    });
    const tapA = tapNameForMac(macA);
    expect(deployedA.vifs).toEqual([
      expect.objectContaining({
        vmUuid: vmA.uuid,
        mac: macA,
        duidLL: duidLl(macA),
        linkLocal: eui64LinkLocal(macA),
        device: tapA,
        bridge,
        networkId,
        state: "protected",
      }),
    ]);
    const consoleA = await openGuestConsole(vmA.name);
    consoles.push(consoleA);
    await waitFor("the reservation made from A's vif.report", () => (reservationsMade.length > 0 ? true : undefined));
    expect(reservationsMade[0]).toMatchObject({ duidLL: duidLl(macA), state: "protected", device: tapA });

    const settled = await waitFor(
      "A's reserved address and default route",
      () => {
        const net = consoleA.parsed().network.get("eth0");
        return net?.addresses.includes(addressA) && net.routers.length > 0 ? net : undefined;
      },
      240_000,
    );
    // B keeps advertising every 4 s; watch A for a while longer before judging.
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    const seen = consoleA.parsed();
    expect(settled.addresses).toEqual([addressA]);
    expect(seen.network.get("eth0")).toEqual({ addresses: [addressA], routers: [routerLinkLocal] });
    expect([...(seen.everAddresses.get("eth0") ?? [])]).toEqual([addressA]);
    expect([...(seen.everRouters.get("eth0") ?? [])]).toEqual([routerLinkLocal]);
    expect(seen.everRouters.get("eth0")?.has(eui64LinkLocal(macB))).toBe(false);
    expect(router?.leases().map((lease) => [lease.duid, lease.address])).toContainEqual([duidLl(macA), addressA]);

    // B's port dropped its RAs and its DHCPv6 answers to A's Solicit.
    const tapB = tapNameForMac(macB);
    const countersB = await waitFor("B's drop counters", async () => {
      const counters = (await firewall.counters()).find((entry) => entry.device === tapB);
      return counters !== undefined && counters.ra.packets > 0 && counters.dhcpv6Server.packets > 0 ? counters : undefined;
    });
    expect(countersB.ra.packets).toBeGreaterThan(0);
    expect(countersB.dhcpv6Server.packets).toBeGreaterThan(0);
    expect(consoleB.text()).toMatch(/DHCPADVERTISE\(eth0\) [0-9a-f:]+ 00:03:00:01:/);

    // host.diagnose shows the same ports protected.
    const diag = (await server.call(hostId, "host.diagnose", {})) as unknown as { status: string };
    expect(JSON.stringify(diag)).toContain(tapB);

    // vm.stop: A's tap goes, its rules go, its VIF is reported detached.
    const before = server.reports.last;
    const stopped = await server.call(hostId, "vm.stop", { uuid: vmA.uuid, force: true });
    expect(stopped).toEqual({ uuid: vmA.uuid, state: "stopped" });
    const live = await firewall.readLive();
    expect(live.ports.map((port) => port.device)).not.toContain(tapA);
    expect(live.ports.map((port) => port.device)).toContain(tapB);
    await waitFor("A's detached report", () =>
      server.reports.query({ since: before, hostId, method: "vif.report" }).find((report) => {
        const vif = report.params as VifReport;
        return vif.mac === macA && vif.state === "detached" ? report : undefined;
      }),
    );
    const last = vifReports(macA).at(-1);
    expect(last).toMatchObject({ mac: macA, state: "detached", networkId });
    expect(last?.device).toBeUndefined();
  }, 900_000);
});

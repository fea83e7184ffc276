import { randomBytes, randomUUID } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { duidLl, eui64LinkLocal, type Mac, parseIpv6Network, parseMac } from "../../../../src/addressing/index.js";
import { run } from "../../../../src/exec.js";
import { disableHostIpv6, ensureBridge, removeBridge } from "../../../../src/hostnet/index.js";
import type { HypervisorEvent } from "../../../../src/hypervisor/hypervisor.js";
import { KvmHypervisor } from "../../../../src/hypervisor/kvm/kvm-hypervisor.js";
import { tapNameForMac } from "../../../../src/hypervisor/kvm/tap-name.js";
import { buildGuestImage, type GuestConsole, type GuestImage, parseGuestConsole } from "../../../../src/lab/guest-image.js";
import { ensureLibvirtd } from "../../../../src/lab/libvirtd.js";
import { Netns } from "../../../../src/lab/netns.js";
import { Router } from "../../../../src/lab/router.js";
import { createLogger } from "../../../../src/log.js";
import { uniqueName } from "../../../support/names.js";
import { skipReason } from "../../../support/requirements.js";
import { waitFor } from "../../../support/wait.js";

/**
 * A real guest (Debian cloud kernel + busybox/dhclient initramfs) under a real libvirtd with
 * QEMU software emulation, on a uniquely named bridge in the host namespace (libvirt needs it;
 * no uplink), with a router namespace running dnsmasq (RA with the M flag, DHCPv6 reservation
 * by DUID-LL) attached by a veth.
 */
const skip = skipReason({ root: true, commands: ["libvirtd", "virtlogd", "qemu-system-x86_64", "dnsmasq", "ip", "sysctl", "ldd"] });

const network = parseIpv6Network("2001:db8:4b:1::/64");
const reserved = "2001:db8:4b:1::42";

function randomMac(): Mac {
  const bytes = randomBytes(3);
  return parseMac(`52:54:00:${[...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join(":")}`);
}

describe.skipIf(skip !== undefined)("a real VM on a libvirt bridge", () => {
  const logger = createLogger("silent");
  const bridge = uniqueName("v6e");
  const routerPort = uniqueName("v6r");
  const mac = randomMac();
  const secondMac = randomMac();
  const uuid = randomUUID();
  const name = uniqueName("v6vm");
  let workDir: string;
  let consoleLog: string;
  let image: GuestImage;
  let routerNs: Netns | undefined;
  let router: Router | undefined;
  let hypervisor: KvmHypervisor;
  const events: HypervisorEvent[] = [];

  const guestConsole = (): GuestConsole => parseGuestConsole(existsSync(consoleLog) ? readFileSync(consoleLog, "utf8") : "");

  beforeAll(async () => {
    await ensureLibvirtd();
    image = await buildGuestImage();
    workDir = mkdtempSync(join(tmpdir(), "v6-vm-"));
    chmodSync(workDir, 0o755); // QEMU (libvirt-qemu) writes the console log here
    consoleLog = join(workDir, "console.log");

    await ensureBridge({ bridge });
    routerNs = await Netns.create("v6vr");
    // The router's end is created in its namespace; the peer goes to the host (pid 1's namespace).
    await routerNs.exec("ip", ["link", "add", "eth0", "type", "veth", "peer", "name", routerPort, "netns", "1"]);
    await run("ip", ["link", "set", routerPort, "master", bridge]);
    await disableHostIpv6(routerPort);
    await run("ip", ["link", "set", routerPort, "up"]);
    await routerNs.exec("ip", ["link", "set", "eth0", "up"]);
    router = await Router.start({
      netns: routerNs,
      interface: "eth0",
      network,
      gateway: "2001:db8:4b:1::1",
      workDir,
      reservations: [{ mac, address: reserved }],
      raIntervalSeconds: 4,
    });

    hypervisor = new KvmHypervisor({ uri: "qemu:///system", domainType: "qemu", logger });
    hypervisor.onEvent((event) => events.push(event));
    await hypervisor.connect();
  });

  afterAll(async () => {
    await hypervisor?.destroyVm(uuid).catch(() => undefined);
    await hypervisor?.close();
    await router?.stop();
    await routerNs?.destroy();
    await run("ip", ["link", "del", routerPort], { okExitCodes: [0, 1] });
    await removeBridge({ bridge }).catch(() => run("ip", ["link", "del", bridge], { okExitCodes: [0, 1] }));
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  it("boots, gets its EUI-64 link-local and exactly the reserved address, sees a NIC hot-plugged and unplugged, and keeps the address after stop/start", async () => {
    const vm = await hypervisor.deployVm({
      name,
      uuid,
      memoryMiB: 256,
      vcpus: 1,
      boot: { kind: "kernel", kernel: image.kernel, initrd: image.initrd, cmdline: image.cmdline },
      nics: [{ bridge, mac }],
      consoleLog,
    });
    expect(vm).toMatchObject({ uuid, name, state: "running" });
    expect(vm.nics).toEqual([{ mac, device: tapNameForMac(mac), bridge, model: "virtio" }]);
    // The tap the agent named is on the bridge.
    const tap = await run("ip", ["-json", "link", "show", "dev", tapNameForMac(mac)]);
    expect(JSON.parse(tap.stdout)[0]).toMatchObject({ master: bridge });

    const first = await waitFor(
      "the guest's DHCPv6 address",
      () => {
        const seen = guestConsole();
        return seen.globals.has("eth0") ? seen : undefined;
      },
      180_000,
    );
    expect(first.linkLocal.get("eth0")).toBe(eui64LinkLocal(mac));
    expect(first.addresses.get("eth0")).toEqual([reserved]);
    expect(first.globals.get("eth0")).toEqual([reserved]);
    expect(router?.leases().map((lease) => [lease.duid, lease.address])).toContainEqual([duidLl(mac), reserved]);

    // Hot-plug: libvirt reports the device, the guest sees a new NIC with its own link-local.
    const nic = await hypervisor.attachNic(uuid, { bridge, mac: secondMac });
    expect(nic).toEqual({ mac: secondMac, device: tapNameForMac(secondMac), bridge, model: "virtio" });
    await waitFor("the nic-added event", () => events.find((event) => event.type === "nic-added"), 60_000);
    expect(events.filter((event) => event.type === "nic-added")).toEqual([
      { type: "nic-added", uuid, device: tapNameForMac(secondMac), mac: secondMac },
    ]);
    const plugged = await waitFor("the guest to see the second NIC", () => guestConsole().linkLocal.get("eth1"), 60_000);
    expect(plugged).toBe(eui64LinkLocal(secondMac));
    expect((await hypervisor.getVm(uuid)).nics.map((each) => each.mac)).toEqual([mac, secondMac]);

    // Hot-unplug: the guest releases the device and libvirt reports it with the MAC we know.
    await hypervisor.detachNic(uuid, secondMac);
    await waitFor("the nic-removed event", () => events.find((event) => event.type === "nic-removed"), 60_000);
    expect(events.filter((event) => event.type === "nic-removed")).toEqual([
      { type: "nic-removed", uuid, device: tapNameForMac(secondMac), mac: secondMac },
    ]);
    expect((await hypervisor.getVm(uuid)).nics.map((each) => each.mac)).toEqual([mac]);

    // Stop and start: a fresh boot (libvirt truncates the console file) gets the same address.
    await hypervisor.stopVm(uuid, { force: true });
    expect((await hypervisor.getVm(uuid)).state).toBe("stopped");
    await hypervisor.startVm(uuid);
    const second = await waitFor(
      "the address after restart",
      () => {
        const seen = guestConsole();
        return seen.globals.has("eth0") ? seen : undefined;
      },
      180_000,
    );
    expect(second.boots).toBe(1);
    expect(second.linkLocal.get("eth0")).toBe(eui64LinkLocal(mac));
    expect(second.addresses.get("eth0")).toEqual([reserved]);
    expect(second.globals.get("eth0")).toEqual([reserved]);

    const types = events.filter((event) => "uuid" in event && event.uuid === uuid).map((event) => event.type);
    expect(types).toEqual(["vm-defined", "vm-started", "nic-added", "nic-removed", "vm-stopped", "vm-started"]);

    await hypervisor.destroyVm(uuid);
    await expect(hypervisor.getVm(uuid)).rejects.toMatchObject({ code: "not_found" });
  });
});

describe.skipIf(skip !== undefined)("the KVM backend when libvirtd's connection drops", () => {
  it("reports connection-lost, fails calls as unavailable meanwhile, reconnects and reports connection-restored", async () => {
    await ensureLibvirtd();
    // A unix-socket proxy in front of the real libvirtd lets the test cut the connection (and
    // refuse new ones) without stopping a daemon other tests may be using.
    const directory = mkdtempSync(join(tmpdir(), "v6-proxy-"));
    const socketPath = join(directory, "libvirt-sock");
    const sockets = new Set<Socket>();
    let refusing = false;
    const proxy = createServer((client) => {
      if (refusing) {
        client.destroy();
        return;
      }
      const upstream = connect("/var/run/libvirt/libvirt-sock");
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on("error", () => socket.destroy());
        socket.on("close", () => sockets.delete(socket));
      }
      client.pipe(upstream).pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(socketPath, resolve));
    const hypervisor = new KvmHypervisor({
      uri: `qemu+unix:///system?socket=${socketPath}`,
      logger: createLogger("silent"),
      reconnectBackoff: { initialMs: 100, maxMs: 500 },
    });
    const events: HypervisorEvent[] = [];
    hypervisor.onEvent((event) => events.push(event));
    try {
      await hypervisor.connect();
      expect(Array.isArray(await hypervisor.listVms())).toBe(true);

      refusing = true;
      for (const socket of sockets) socket.destroy();
      await waitFor("connection-lost", () => events.find((event) => event.type === "connection-lost"), 30_000);
      await expect(hypervisor.listVms()).rejects.toMatchObject({ code: "unavailable", message: expect.stringContaining("reconnecting") });

      refusing = false;
      await waitFor("connection-restored", () => events.find((event) => event.type === "connection-restored"), 30_000);
      expect(Array.isArray(await hypervisor.listVms())).toBe(true);
      expect(events.map((event) => event.type)).toEqual(["connection-lost", "connection-restored"]);
    } finally {
      await hypervisor.close();
      proxy.close();
      for (const socket of sockets) socket.destroy();
      rmSync(directory, { recursive: true, force: true });
    }
  });
});

import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { dhcpHostLine, type Mac } from "../../../../src/addressing/index.js";
import { run } from "../../../../src/exec.js";
import { XenServerHypervisor } from "../../../../src/hypervisor/xenserver/index.js";
import { NetnsDom0, startXapiSimulator } from "../../../../src/lab/xapi-sim/index.js";
import { Netns, vethBetween, withNetns } from "../../../support/netns.js";
import { skipReason } from "../../../support/requirements.js";
import { until } from "../../../support/wait.js";

const skip = skipReason({ root: true, commands: ["ip", "dnsmasq", "dhclient"] });
const vlanKernel = skip === undefined && (await kernelHasVlans());

/** 802.1Q devices need the kernel's 8021q, which some test kernels lack (then the error path is tested). */
async function kernelHasVlans(): Promise<boolean> {
  const probe = await Netns.create("xvq");
  try {
    await probe.exec("ip", ["link", "add", "probe0", "type", "veth", "peer", "name", "probe1"]);
    const { exitCode } = await probe.exec("ip", ["link", "add", "link", "probe0", "name", "probe0.5", "type", "vlan", "id", "5"], {
      okExitCodes: [0, 1, 2],
    });
    return exitCode === 0;
  } finally {
    await probe.destroy();
  }
}

const PREFIX = "2001:db8:77:1::";
const ROUTER = `${PREFIX}1`;
const RESERVED = `${PREFIX}a`;

async function globalAddresses(netns: Netns, device: string): Promise<string[]> {
  const data = await netns.ipJson<{ addr_info: { local: string; scope: string; tentative?: boolean }[] }[]>([
    "-6",
    "addr",
    "show",
    "dev",
    device,
  ]);
  return (data[0]?.addr_info ?? []).filter((info) => info.scope === "global").map((info) => info.local);
}

async function linkLocalReady(netns: Netns, device: string): Promise<boolean> {
  const data = await netns.ipJson<{ addr_info: { scope: string; tentative?: boolean }[] }[]>(["-6", "addr", "show", "dev", device]);
  return (data[0]?.addr_info ?? []).some((info) => info.scope === "link" && info.tentative !== true);
}

async function startDnsmasq(router: Netns, iface: string, mac: Mac, reserved: string, dir: string): Promise<void> {
  await router.exec("dnsmasq", [
    "--conf-file=/dev/null",
    "--port=0",
    `--interface=${iface}`,
    "--bind-interfaces",
    "--enable-ra",
    `--dhcp-range=::100,::1ff,constructor:${iface},64,1h`,
    `--${dhcpHostLine(mac, reserved)}`,
    "--dhcp-option=option6:dns-server",
    `--pid-file=${join(dir, "dnsmasq.pid")}`,
    `--dhcp-leasefile=${join(dir, "dnsmasq.leases")}`,
  ]);
}

/** dhclient -6 -D LL on the guest's eth0 until it holds `reserved`. */
async function dhcp(guest: Netns, dir: string, round: string, reserved: string): Promise<string[]> {
  await until(() => linkLocalReady(guest, "eth0"), "the guest's link-local address");
  await guest.exec(
    "dhclient",
    ["-6", "-D", "LL", "-1", "-pf", join(dir, `dhclient-${round}.pid`), "-lf", join(dir, `dhclient-${round}.leases`), "eth0"],
    {
      timeoutMs: 60_000,
    },
  );
  return until(async () => {
    const addresses = await globalAddresses(guest, "eth0");
    return addresses.includes(reserved) ? addresses : undefined;
  }, `the reserved address (${round})`);
}

async function resolvConfHash(): Promise<string> {
  return createHash("sha256")
    .update(await readFile("/etc/resolv.conf").catch(() => Buffer.alloc(0)))
    .digest("hex");
}

async function killPidFile(path: string): Promise<void> {
  const pid = (await readFile(path, "utf8").catch(() => "")).trim();
  if (/^\d+$/.test(pid)) await run("kill", [pid], { okExitCodes: [0, 1] });
}

/**
 * The seed's sequence on a dom0-like topology: a router namespace serves RA + DHCPv6 on the
 * physical network's bridge in dom0; the simulator's VM gets a real `vif<domid>.0`; the guest
 * namespace runs `dhclient -6 -D LL` and gets the address reserved for its VIF.MAC's DUID-LL —
 * and the same one again after a reboot gave it a new domid and new dom0 device.
 */
describe.skipIf(skip !== undefined)("XenServer dom0 topology with a real router and DHCPv6", () => {
  it("hands the VIF's reserved address to the guest, before and after a reboot that meets a session expiry", async () => {
    const resolvBefore = await resolvConfHash();
    const dir = await mkdtemp(join(tmpdir(), "xen-dhcp-"));
    await withNetns(["xd0", "xrt", "xg"], async (dom0, router, guest) => {
      const sim = await startXapiSimulator({ dom0: new NetnsDom0({ dom0: dom0.name, guestNetns: () => guest.name }) });
      const backend = new XenServerHypervisor({ url: sim.url, auth: { user: "root", password: "xenroot" } });
      try {
        // dom0's physical network: xenbr0 with the "uplink" towards the router.
        await dom0.exec("ip", ["link", "add", "xenbr0", "type", "bridge"]);
        await dom0.exec("ip", ["link", "set", "xenbr0", "up"]);
        await vethBetween(dom0, "eth0", router, "eth0");
        await dom0.exec("ip", ["link", "set", "eth0", "master", "xenbr0"]);
        await router.exec("ip", ["-6", "addr", "add", `${ROUTER}/64`, "dev", "eth0", "nodad"]);

        await backend.connect();
        const mac = "52:54:00:77:00:0a" as Mac;
        const vm = sim.seed.vm({ nameLabel: "dhcp-guest" });
        sim.seed.vif({ vm: vm.ref, network: sim.host?.network as string, device: "0", mac });
        await until(async () => (await backend.listVms()).length === 1, "the VM in the cache");

        await startDnsmasq(router, "eth0", mac, RESERVED, dir);

        await backend.startVm(vm.uuid);
        const firstDevice = (await backend.getVm(vm.uuid)).nics[0]?.device;
        expect(firstDevice).toBe(`vif${sim.db.get("VM", vm.ref).domid}.0`);
        expect(await dhcp(guest, dir, "first", RESERVED)).toContain(RESERVED);
        await killPidFile(join(dir, "dhclient-first.pid"));

        // The reboot meets a XAPI session expiry (twice: the client's own re-login is not enough);
        // the backend logs in again and the reboot still happens once.
        sim.addFault({ kind: "expire-session", method: "Async.VM.hard_reboot", times: 2 });
        await backend.connection.callAsync("VM.hard_reboot", vm.ref);
        expect(sim.callCount("Async.VM.hard_reboot")).toBe(3);
        const secondDevice = await until(async () => {
          const device = (await backend.getVm(vm.uuid)).nics[0]?.device;
          return device !== firstDevice ? device : undefined;
        }, "the new device after the reboot");
        expect(secondDevice).toBe(`vif${sim.db.get("VM", vm.ref).domid}.0`);
        // The guest's NIC is a new device: its old address went with the old domain.
        expect(await globalAddresses(guest, "eth0")).not.toContain(RESERVED);
        expect(await dhcp(guest, dir, "second", RESERVED)).toContain(RESERVED);
      } finally {
        await killPidFile(join(dir, "dhclient-first.pid"));
        await killPidFile(join(dir, "dhclient-second.pid"));
        await killPidFile(join(dir, "dnsmasq.pid"));
        await backend.close();
        await sim.close();
      }
    });
    await rm(dir, { recursive: true, force: true });
    expect(await resolvConfHash()).toBe(resolvBefore);
  });

  // One test either way, so CI always runs a real tagged case: the VLAN end to end where the
  // kernel has 802.1Q, otherwise the clear error and the complete rollback.
  const refusesWithout8021q = async () => {
    await withNetns(["xd0", "xrt"], async (dom0, router) => {
      const sim = await startXapiSimulator({ dom0: new NetnsDom0({ dom0: dom0.name }) });
      const backend = new XenServerHypervisor({ url: sim.url, auth: { user: "root", password: "xenroot" } });
      try {
        await vethBetween(dom0, "eth0", router, "eth0");
        await backend.connect();
        const linksBefore = (await dom0.ipJson<{ ifname: string }[]>(["link", "show"])).map((link) => link.ifname).sort();
        const networksBefore = sim.db.all("network").map(([ref]) => ref);
        await expect(backend.ensureSharedNetwork({ prefix: "2001:db8:78:1::/64", vlan: 105 })).rejects.toMatchObject({
          code: "hypervisor_failure",
          message: expect.stringMatching(/eth0\.105.*802\.1Q/),
        });
        // The network made for the VLAN, the VLAN and its PIF are gone again; dom0 is as it was.
        expect(sim.callCount("VLAN.destroy")).toBe(1);
        expect(sim.db.all("network").map(([ref]) => ref)).toEqual(networksBefore);
        expect(sim.db.all("VLAN")).toEqual([]);
        expect(sim.db.all("PIF").filter(([, pif]) => pif.VLAN !== -1)).toEqual([]);
        expect((await dom0.ipJson<{ ifname: string }[]>(["link", "show"])).map((link) => link.ifname).sort()).toEqual(linksBefore);
      } finally {
        await backend.close();
        await sim.close();
      }
    });
  };

  const servesTaggedNetwork = async () => {
    const dir = await mkdtemp(join(tmpdir(), "xen-vlan-"));
    const prefix = "2001:db8:78:1::";
    const reserved = `${prefix}b`;
    await withNetns(["xd0", "xrt", "xg"], async (dom0, router, guest) => {
      const sim = await startXapiSimulator({ dom0: new NetnsDom0({ dom0: dom0.name, guestNetns: () => guest.name }) });
      const backend = new XenServerHypervisor({ url: sim.url, auth: { user: "root", password: "xenroot" } });
      try {
        // dom0's eth0 (the management PIF's device) is a trunk to the router; VLAN 105 on both ends.
        await vethBetween(dom0, "eth0", router, "eth0");
        await router.exec("ip", ["link", "add", "link", "eth0", "name", "eth0.105", "type", "vlan", "id", "105"]);
        await router.exec("ip", ["link", "set", "eth0.105", "up"]);
        await router.exec("ip", ["-6", "addr", "add", `${prefix}1/64`, "dev", "eth0.105", "nodad"]);
        await backend.connect();

        const shared = await backend.ensureSharedNetwork({ prefix: `${prefix}/64`, vlan: 105 });
        expect(shared).toMatchObject({ created: true, vlan: 105 });
        const vlanPort = (await dom0.ipJson<{ ifname: string; master?: string }[]>(["link", "show", "eth0.105"]))[0];
        expect(vlanPort?.master).toBe(shared.bridge);

        const mac = "52:54:00:78:00:0b" as Mac;
        const vm = sim.seed.vm({ nameLabel: "vlan-guest" });
        await until(async () => (await backend.listVms()).length === 1, "the VM in the cache");
        const nic = await backend.attachNic(vm.uuid, { bridge: shared.bridge, mac });
        expect(nic).toMatchObject({ device: undefined, index: 0, bridge: shared.bridge });
        await startDnsmasq(router, "eth0.105", mac, reserved, dir);
        await backend.startVm(vm.uuid);
        const device = (await backend.getVm(vm.uuid)).nics[0]?.device as string;
        expect(device).toBe(`vif${sim.db.get("VM", vm.ref).domid}.0`);
        expect((await dom0.ipJson<{ master?: string }[]>(["link", "show", device]))[0]?.master).toBe(shared.bridge);
        expect(await dhcp(guest, dir, "vlan", reserved)).toContain(reserved);
      } finally {
        await killPidFile(join(dir, "dhclient-vlan.pid"));
        await killPidFile(join(dir, "dnsmasq.pid"));
        await backend.close();
        await sim.close();
      }
    });
    await rm(dir, { recursive: true, force: true });
  };

  it(
    vlanKernel
      ? "serves a tagged shared network: ensureSharedNetwork makes the VLAN, dom0 carries it, the guest gets its address"
      : "refuses a tagged shared network where dom0's kernel has no 802.1Q, leaving nothing behind in XAPI or dom0",
    vlanKernel ? servesTaggedNetwork : refusesWithout8021q,
  );
});

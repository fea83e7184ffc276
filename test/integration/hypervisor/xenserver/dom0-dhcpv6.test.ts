import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { dhcpHostLine, type Mac } from "../../../../src/addressing/index.js";
import { run } from "../../../../src/exec.js";
import { XenServerHypervisor } from "../../../../src/hypervisor/xenserver/index.js";
import { type Netns, vethBetween, withNetns } from "../../../support/netns.js";
import { skipReason } from "../../../support/requirements.js";
import { NetnsDom0, startXapiSimulator } from "../../../support/xapi-sim/index.js";

const skip = skipReason({ root: true, commands: ["ip", "dnsmasq", "dhclient"] });

const PREFIX = "2001:db8:77:1::";
const ROUTER = `${PREFIX}1`;
const RESERVED = `${PREFIX}a`;

async function until<T>(probe: () => T | undefined | false | Promise<T | undefined | false>, what: string): Promise<T> {
  for (let attempt = 0; attempt < 1500; attempt++) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

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
  it("hands the VIF's reserved address to the guest, before and after a reboot", async () => {
    const resolvBefore = createHash("sha256")
      .update(await readFile("/etc/resolv.conf").catch(() => Buffer.alloc(0)))
      .digest("hex");
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

        await router.exec("dnsmasq", [
          "--conf-file=/dev/null",
          "--port=0",
          "--interface=eth0",
          "--bind-interfaces",
          "--enable-ra",
          "--dhcp-range=::100,::1ff,constructor:eth0,64,1h",
          `--${dhcpHostLine(mac, RESERVED)}`,
          "--dhcp-option=option6:dns-server",
          `--pid-file=${join(dir, "dnsmasq.pid")}`,
          `--dhcp-leasefile=${join(dir, "dnsmasq.leases")}`,
        ]);

        const dhcp = async (round: string) => {
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
            return addresses.includes(RESERVED) ? addresses : undefined;
          }, `the reserved address (${round})`);
        };

        await backend.startVm(vm.uuid);
        const firstDevice = (await backend.getVm(vm.uuid)).nics[0]?.device;
        expect(firstDevice).toBe(`vif${sim.db.get("VM", vm.ref).domid}.0`);
        expect(await dhcp("first")).toContain(RESERVED);
        await killPidFile(join(dir, "dhclient-first.pid"));

        await backend.connection.callAsync("VM.hard_reboot", vm.ref);
        const secondDevice = await until(async () => {
          const device = (await backend.getVm(vm.uuid)).nics[0]?.device;
          return device !== firstDevice ? device : undefined;
        }, "the new device after the reboot");
        expect(secondDevice).toBe(`vif${sim.db.get("VM", vm.ref).domid}.0`);
        // The guest's NIC is a new device: its old address went with the old domain.
        expect(await globalAddresses(guest, "eth0")).not.toContain(RESERVED);
        expect(await dhcp("second")).toContain(RESERVED);
      } finally {
        await killPidFile(join(dir, "dhclient-first.pid"));
        await killPidFile(join(dir, "dhclient-second.pid"));
        await killPidFile(join(dir, "dnsmasq.pid"));
        await backend.close();
        await sim.close();
      }
    });
    await rm(dir, { recursive: true, force: true });
    const resolvAfter = createHash("sha256")
      .update(await readFile("/etc/resolv.conf").catch(() => Buffer.alloc(0)))
      .digest("hex");
    expect(resolvAfter).toBe(resolvBefore);
  });
});

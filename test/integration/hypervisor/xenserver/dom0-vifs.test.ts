import { describe, expect, it } from "vitest";
import { eui64LinkLocal, type Mac } from "../../../../src/addressing/index.js";
import type { HypervisorEvent } from "../../../../src/hypervisor/hypervisor.js";
import { XenServerHypervisor } from "../../../../src/hypervisor/xenserver/index.js";
import { NetnsDom0, startXapiSimulator } from "../../../../src/lab/xapi-sim/index.js";
import { type Netns, withNetns } from "../../../support/netns.js";
import { skipReason } from "../../../support/requirements.js";
import { until } from "../../../support/wait.js";

const skip = skipReason({ root: true, commands: ["ip", "ping"] });

interface Link {
  ifname: string;
  address: string;
  master?: string;
  operstate: string;
}

async function links(netns: Netns): Promise<Link[]> {
  return netns.ipJson<Link[]>(["link", "show"]);
}

/**
 * A dom0-like host: the simulator's running VMs get real veth ports `vif<domid>.<n>` on a real
 * bridge inside a "dom0" namespace, with the guest's side (carrying VIF.MAC) in the VM's own
 * namespace; the backend sees them through XAPI events and names them right, across reboots.
 */
describe.skipIf(skip !== undefined)("XenServer backend with dom0 VIFs as real veth ports", () => {
  it("reports the real dom0 devices, follows a reboot's new domid, and the guests talk over the bridge", async () => {
    await withNetns(["xd0", "xga", "xgb"], async (dom0, guestA, guestB) => {
      const guestOf = new Map<string, string>();
      const sim = await startXapiSimulator({ dom0: new NetnsDom0({ dom0: dom0.name, guestNetns: (uuid) => guestOf.get(uuid) }) });
      const backend = new XenServerHypervisor({ url: sim.url, auth: { user: "root", password: "xenroot" }, backoff: { initialMs: 20 } });
      const events: HypervisorEvent[] = [];
      backend.onEvent((event) => events.push(event));
      try {
        await backend.connect();
        const network = sim.host?.network as string;
        const macA = "52:54:00:0a:00:01" as Mac;
        const macB = "52:54:00:0b:00:01" as Mac;
        const vmA = sim.seed.vm({ nameLabel: "guest-a" });
        const vmB = sim.seed.vm({ nameLabel: "guest-b" });
        sim.seed.vif({ vm: vmA.ref, network, device: "0", mac: macA });
        sim.seed.vif({ vm: vmB.ref, network, device: "0", mac: macB });
        guestOf.set(vmA.uuid, guestA.name);
        guestOf.set(vmB.uuid, guestB.name);
        await until(async () => (await backend.listVms()).length === 2, "both VMs in the cache");

        await backend.startVm(vmA.uuid);
        await backend.startVm(vmB.uuid);
        const infoA = await until(async () => {
          const info = await backend.getVm(vmA.uuid);
          return info.nics[0]?.device !== undefined ? info : undefined;
        }, "guest A's device");
        const deviceA = infoA.nics[0]?.device as string;
        expect(deviceA).toBe(`vif${sim.db.get("VM", vmA.ref).domid}.0`);

        // The reported device is a real port on the network's bridge in dom0, with netback's MAC;
        // the guest's end carries VIF.MAC.
        const dom0Links = await links(dom0);
        expect(dom0Links.find((link) => link.ifname === deviceA)).toMatchObject({ master: "xenbr0", address: "fe:ff:ff:ff:ff:ff" });
        expect((await links(guestA)).find((link) => link.ifname === "eth0")?.address).toBe(macA);

        // Real frames cross the bridge: guest A pings guest B's EUI-64 link-local address.
        const linkLocalB = eui64LinkLocal(macB);
        // Both ends' link-locals must have passed DAD: a tentative source cannot send.
        for (const [guest, mac] of [
          [guestA, macA],
          [guestB, macB],
        ] as const) {
          await until(async () => {
            const { stdout } = await guest.exec("ip", ["-6", "-json", "addr", "show", "dev", "eth0"]);
            return stdout.includes(eui64LinkLocal(mac)) && !stdout.includes("tentative");
          }, `${mac}'s link-local address`);
        }
        const ping = await guestA.exec("ping", ["-6", "-c", "3", "-i", "0.2", "-w", "5", `${linkLocalB}%eth0`], { okExitCodes: [0, 1] });
        expect(ping.stdout).toMatch(/ [1-3] received/);

        // Hot-plug a second NIC into the running guest: vif<domid>.1 appears, reported as such.
        const macA2 = "52:54:00:0a:00:02" as Mac;
        const nic = await backend.attachNic(vmA.uuid, { bridge: "xenbr0", mac: macA2 });
        expect(nic.device).toBe(`vif${sim.db.get("VM", vmA.ref).domid}.1`);
        expect((await links(dom0)).find((link) => link.ifname === nic.device)?.master).toBe("xenbr0");
        expect((await links(guestA)).find((link) => link.ifname === "eth1")?.address).toBe(macA2);
        await until(
          () => events.some((event) => event.type === "nic-added" && event.device === nic.device),
          "nic-added for the hot-plugged VIF",
        );

        // A tagged shared network: its own bridge in dom0 gets guest B's new port.
        const shared = await backend.ensureSharedNetwork({ prefix: "2001:db8:79:1::/64", vlan: 105 });
        const tagged = await backend.attachNic(vmB.uuid, { bridge: shared.bridge, mac: "52:54:00:0b:00:02" as Mac });
        expect(tagged.bridge).toBe(shared.bridge);
        expect((await links(dom0)).find((link) => link.ifname === tagged.device)?.master).toBe(shared.bridge);

        // Reboot: a new domain, so new device names; the old ports are gone from dom0.
        const oldDomid = sim.db.get("VM", vmA.ref).domid as number;
        await backend.connection.callAsync("VM.hard_reboot", vmA.ref);
        const newDomid = sim.db.get("VM", vmA.ref).domid as number;
        expect(newDomid).not.toBe(oldDomid);
        await until(
          () => events.some((event) => event.type === "domid-changed" && event.uuid === vmA.uuid && event.domainId === newDomid),
          "domid-changed",
        );
        const rebooted = await until(async () => {
          const info = await backend.getVm(vmA.uuid);
          return info.domainId === newDomid ? info : undefined;
        }, "the new domid in the backend");
        expect(rebooted.nics.map((n) => n.device)).toEqual([`vif${newDomid}.0`, `vif${newDomid}.1`]);
        const afterReboot = (await links(dom0)).map((link) => link.ifname);
        expect(afterReboot).toEqual(expect.arrayContaining([`vif${newDomid}.0`, `vif${newDomid}.1`]));
        expect(afterReboot).not.toContain(`vif${oldDomid}.0`);
        expect(afterReboot).not.toContain(`vif${oldDomid}.1`);
        expect((await links(guestA)).find((link) => link.ifname === "eth0")?.address).toBe(macA);

        // Stop: the ports disappear with the domain.
        await backend.stopVm(vmA.uuid, { force: true });
        const stopped = (await links(dom0)).map((link) => link.ifname);
        expect(stopped.filter((name) => name.startsWith(`vif${newDomid}.`))).toEqual([]);
        await until(() => events.some((event) => event.type === "vm-stopped" && event.uuid === vmA.uuid), "vm-stopped");
        expect((await backend.getVm(vmA.uuid)).nics.every((n) => n.device === undefined)).toBe(true);
      } finally {
        await backend.close();
        await sim.close();
      }
    });
  });
});

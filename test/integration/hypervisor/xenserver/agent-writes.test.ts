import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Mac, parseIpv6Network, parseMac } from "../../../../src/addressing/index.js";
import { Agent } from "../../../../src/agent/agent.js";
import { type DesiredState, emptyDesiredState } from "../../../../src/agent/desired-state.js";
import type { VifReport } from "../../../../src/agent/vif-report.js";
import { createFirewall } from "../../../../src/firewall/index.js";
import type { Firewall } from "../../../../src/firewall/model.js";
import { xenServerBackend } from "../../../../src/hypervisor/xenserver/backend.js";
import { XenServerHypervisor } from "../../../../src/hypervisor/xenserver/index.js";
import { prefixesOf } from "../../../../src/hypervisor/xenserver/shared-network.js";
import { NetnsDom0, type RunningXapiSimulator, startXapiSimulator } from "../../../../src/lab/xapi-sim/index.js";
import { createLogger } from "../../../../src/log.js";
import { attackOn, sendAttack } from "../../../support/attacks.js";
import { Netns } from "../../../support/netns.js";
import { skipReason } from "../../../support/requirements.js";

const skip = skipReason({ root: true, commands: ["ip", "ebtables", "ip6tables", "sysctl", "/usr/bin/python3"] });

/**
 * The agent core's own writes on XenServer, read back at once: `nic.plug` answers and protects
 * what `VIF.plug` just did although the xen-api cache (fed by `event.from`, polled after a pause)
 * has not seen it yet, and `network.ensure` holds under concurrency. Each timing is forced by the
 * simulator: `VIF.plug`/`VIF.unplug` answer the moment they took effect ("instant", before any
 * event reached the client) or 300 ms later ("slow", the cache has long caught up).
 */
describe.skipIf(skip !== undefined)("the agent on XenServer reads its own writes", () => {
  for (const [timing, vifAnswerDelayMs] of [
    ["instant", 0],
    ["slow", 300],
  ] as const) {
    describe(`VIF.plug and VIF.unplug answer ${timing === "instant" ? "at once" : "late"}`, () => {
      let host: XenHost;
      beforeAll(async () => {
        host = await XenHost.start(vifAnswerDelayMs);
      });
      afterAll(async () => {
        await host?.stop();
      });

      it("nic.plug answers protected with the vif it plugged, whose rules are live; nic.unplug removes them at once", async () => {
        const vm = await host.runningVm("plug-unplug", { domainType: "pvh" });
        const mac = host.mac(1);
        const plugged = await host.agent.plugNic(vm.uuid, { networkId: "net-a", mac });
        const domid = host.sim.db.get("VM", vm.ref).domid as number;
        expect(plugged).toMatchObject({ state: "protected", device: `vif${domid}.0`, mac });
        expect(await host.liveDevices(mac)).toEqual([`vif${domid}.0`]);

        const unplugged = await host.agent.unplugNic(vm.uuid, mac);
        expect(unplugged.state).toBe("unplugged");
        expect(await host.liveDevices(mac)).toEqual([]);
        expect(host.reportsFor(mac).at(-1)?.state).toBe("unplugged");
      });

      it("two nic.plug of one NIC at once make one VIF, and both answer protected", async () => {
        const vm = await host.runningVm("twice", { domainType: "pvh" });
        const mac = host.mac(2);
        const answers = await Promise.all([
          host.agent.plugNic(vm.uuid, { networkId: "net-a", mac }),
          host.agent.plugNic(vm.uuid, { networkId: "net-a", mac }),
        ]);
        expect(answers.map((answer) => answer.state)).toEqual(["protected", "protected"]);
        const vifs = host.sim.db.all("VIF").filter(([, vif]) => vif.MAC === mac);
        expect(vifs).toHaveLength(1);
        expect(await host.liveDevices(mac)).toHaveLength(1);
      });

      it("two nic.plug of different NICs of one VM at once: both protected on their own vif", async () => {
        const vm = await host.runningVm("two-nics", { domainType: "pvh" });
        const [first, second] = [host.mac(3), host.mac(4)];
        const answers = await Promise.all([
          host.agent.plugNic(vm.uuid, { networkId: "net-a", mac: first }),
          host.agent.plugNic(vm.uuid, { networkId: "net-a", mac: second }),
        ]);
        expect(answers.map((answer) => answer.state)).toEqual(["protected", "protected"]);
        expect(new Set(answers.map((answer) => answer.device)).size).toBe(2);
        for (const answer of answers) expect(await host.liveDevices(answer.mac as Mac)).toEqual([answer.device]);
      });

      it("an HVM guest's emulated tap<domid>.<n> gets the same rules as its vif", async () => {
        const guest = await Netns.create("xwg");
        host.namespaces.push(guest);
        const vm = await host.runningVm("hvm", { emulated: true, guest });
        const mac = host.mac(5);
        const plugged = await host.agent.plugNic(vm.uuid, { networkId: "net-a", mac });
        const domid = host.sim.db.get("VM", vm.ref).domid as number;
        const tap = `tap${domid}.0`;
        expect(plugged).toMatchObject({ state: "protected", device: `vif${domid}.0` });
        expect((await host.liveDevices(mac)).sort()).toEqual([tap, `vif${domid}.0`]);
        expect((await host.dom0.ipJson<{ master?: string }[]>(["link", "show", tap]))[0]?.master).toBe("xenbr0");
        // The guest's traffic goes through the tap: a rogue RA from it is dropped there.
        const sent = await sendAttack(
          guest.name,
          "eth0",
          "ra",
          attackOn("ra", mac, { mac: "52:54:00:7a:ff:01", address: "2001:db8:7a:1::ff" }),
        );
        expect(sent).toBeGreaterThan(0);
        const counters = (await host.firewall.counters()).find((port) => port.device === tap);
        expect(counters?.ra.packets).toBeGreaterThanOrEqual(sent);
        await host.agent.unplugNic(vm.uuid, mac);
        expect(await host.liveDevices(mac)).toEqual([]);
      });

      it("ten concurrent network.ensure, of one network and of ten sharing one XAPI network, all succeed", async () => {
        const same = await Promise.allSettled(
          Array.from({ length: 10 }, () => host.agent.ensureNetwork({ networkId: "net-same", network: prefix(0x70) })),
        );
        expect(same.filter((result) => result.status === "rejected")).toEqual([]);
        const many = await Promise.allSettled(
          Array.from({ length: 10 }, (_, index) =>
            host.agent.ensureNetwork({ networkId: `net-${timing}-${index}`, network: prefix(0x80 + index) }),
          ),
        );
        expect(many.filter((result) => result.status === "rejected")).toEqual([]);
        // All of them are untagged, so they share the management network's one other_config key.
        const xenbr0 = host.sim.db.get("network", host.sim.host?.network);
        const carried = prefixesOf(xenbr0 as { other_config: Record<string, string> });
        for (const index of [0x70, ...Array.from({ length: 10 }, (_, i) => 0x80 + i)]) expect(carried).toContain(prefix(index).cidr);
        expect(new Set(carried).size).toBe(carried.length);
      });
    });
  }
});

function prefix(third: number) {
  return parseIpv6Network(`2001:db8:7a:${third.toString(16)}::/64`);
}

/** A simulated XenServer host (XAPI simulator, dom0 of real veths) and an agent core on it. */
class XenHost {
  private vmCount = 0;

  private constructor(
    /** Every VIF report the agent emitted (the channel's `vif.report` in production). */
    readonly reports: VifReport[],
    readonly dom0: Netns,
    readonly sim: RunningXapiSimulator,
    readonly firewall: Firewall,
    readonly agent: Agent,
    private readonly cloud: XenServerHypervisor,
    private readonly emulatedVms: Set<string>,
    private readonly guestOf: Map<string, string>,
  ) {}

  /** Guest namespaces made by tests, deleted with the host. */
  readonly namespaces: Netns[] = [];

  static async start(vifAnswerDelayMs: number): Promise<XenHost> {
    const dom0 = await Netns.create("xw0");
    try {
      await dom0.exec("ip", ["link", "add", "xenbr0", "type", "bridge"]);
      await dom0.exec("ip", ["link", "set", "xenbr0", "up"]);
      const emulatedVms = new Set<string>();
      const guestOf = new Map<string, string>();
      const sim = await startXapiSimulator({
        dom0: new NetnsDom0({ dom0: dom0.name, emulated: (uuid) => emulatedVms.has(uuid), guestNetns: (uuid) => guestOf.get(uuid) }),
        vifAnswerDelayMs,
      });
      const logger = createLogger("silent");
      const auth = { user: "root", password: "xenroot" };
      const backend = xenServerBackend({ xapi: { url: sim.url, auth }, netns: dom0.name, logger });
      const cloud = new XenServerHypervisor({ url: sim.url, auth });
      await cloud.connect();
      const firewall = await createFirewall({ backend: "xtables", netns: dom0.name, logger });
      let saved: DesiredState = emptyDesiredState();
      const reports: VifReport[] = [];
      const agent = new Agent({
        backend,
        firewall,
        store: {
          load: async () => saved,
          save: async (state) => {
            saved = state;
          },
        },
        logger,
        report: (report) => reports.push(report),
      });
      await agent.start();
      await agent.ensureNetwork({ networkId: "net-a", network: prefix(1) });
      return new XenHost(reports, dom0, sim, firewall, agent, cloud, emulatedVms, guestOf);
    } catch (error) {
      await dom0.destroy();
      throw error;
    }
  }

  /** A started VM (the cloud's own XAPI client starts it, as in production). */
  /** `emulated`: an HVM guest before its PV drivers load (its traffic on `tap<domid>.<n>`). */
  async runningVm(
    name: string,
    options: { domainType?: "hvm" | "pvh"; emulated?: boolean; guest?: Netns } = {},
  ): Promise<{ ref: string; uuid: string }> {
    const vm = this.sim.seed.vm({ nameLabel: `${name}-${++this.vmCount}`, domainType: options.domainType ?? "hvm" });
    if (options.emulated === true) this.emulatedVms.add(vm.uuid);
    if (options.guest !== undefined) this.guestOf.set(vm.uuid, options.guest.name);
    await this.cloud.startVm(vm.uuid);
    return vm;
  }

  mac(index: number): Mac {
    return parseMac(`52:54:00:7a:${this.vmCount.toString(16).padStart(2, "0")}:${index.toString(16).padStart(2, "0")}`);
  }

  /** Devices whose live rules pin `mac`. */
  async liveDevices(mac: Mac): Promise<string[]> {
    return (await this.firewall.readLive()).ports.filter((port) => port.mac === mac).map((port) => port.device);
  }

  reportsFor(mac: string): VifReport[] {
    return this.reports.filter((report) => report.mac === mac);
  }

  async stop(): Promise<void> {
    await this.agent.stop().catch(() => undefined);
    await this.cloud.close().catch(() => undefined);
    await this.firewall.removeAll().catch(() => undefined);
    await this.sim.close();
    for (const netns of this.namespaces) await netns.destroy();
    await this.dom0.destroy();
  }
}

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { duidLl, eui64LinkLocal, type Mac, parseIpv6Network, parseMac } from "../../../../src/addressing/index.js";
import { type DaemonHandle, run, startDaemon } from "../../../../src/exec.js";
import { createFirewall } from "../../../../src/firewall/index.js";
import type { Firewall, PortCounters } from "../../../../src/firewall/model.js";
import { parseSave, type SavedTable } from "../../../../src/firewall/xtables/live.js";
import { XenServerHypervisor } from "../../../../src/hypervisor/xenserver/index.js";
import { Router } from "../../../../src/lab/router.js";
import { NetnsDom0, type RunningXapiSimulator, startXapiSimulator } from "../../../../src/lab/xapi-sim/index.js";
import { ManagementServer } from "../../../../src/mgmt/index.js";
import type { RemoteError, VifReport } from "../../../../src/protocol/index.js";
import { type AttackKind, attackOn, sendAttack } from "../../../support/attacks.js";
import { Netns, vethBetween } from "../../../support/netns.js";
import { skipReason } from "../../../support/requirements.js";

const CLI = new URL("../../../../dist/src/cli.js", import.meta.url).pathname;
const skip =
  skipReason({ root: true, commands: ["ip", "ebtables", "ip6tables", "dnsmasq", "dhclient", "tcpdump", "/usr/bin/python3"] }) ??
  (existsSync(CLI) ? undefined : "needs `npm run build` (dist/src/cli.js)");
if (skip?.startsWith("needs `npm") && process.env.CI) throw new Error(`CI must run every test, but this one ${skip}`);

const network = parseIpv6Network("2001:db8:79:1::/64");
const GATEWAY = "2001:db8:79:1::1";
const victimMac = parseMac("52:54:00:79:00:0a");
const attackerMac = parseMac("52:54:00:79:00:0b");
const victimAddress = "2001:db8:79:1::a";
const attackerAddress = "2001:db8:79:1::b";
const TOKEN = "dom0-agent-test-token";
const HOST_ID = "xen-dom0-test";

/** A guest played by a namespace whose `eth0` the simulator's dom0 hook creates at VIF plug. */
class XenGuest {
  private round = 0;
  constructor(
    readonly netns: Netns,
    readonly mac: Mac,
    private readonly dir: string,
  ) {}

  async addresses(): Promise<{ local: string; scope: string; tentative?: boolean }[]> {
    const data = await this.netns.ipJson<{ addr_info: { local: string; scope: string; tentative?: boolean }[] }[]>(["-6", "addr", "show"]);
    return data.flatMap((link) => link.addr_info ?? []);
  }

  async globalAddresses(): Promise<string[]> {
    return (await this.addresses()).filter((info) => info.scope === "global" && info.tentative !== true).map((info) => info.local);
  }

  async defaultGateways(): Promise<string[]> {
    const routes = await this.netns.ipJson<{ dst: string; gateway?: string }[]>(["-6", "route", "show", "default"]);
    return routes.map((route) => route.gateway ?? "");
  }

  async neighbourMacs(): Promise<{ dst: string; lladdr?: string }[]> {
    return this.netns.ipJson<{ dst: string; lladdr?: string }[]>(["-6", "neigh", "show"]);
  }

  /** `dhclient -6 -D LL` on eth0 (as the seed tells guests to) until `wanted` is bound. */
  async dhcp(wanted: string): Promise<string[]> {
    this.stopDhclient();
    this.round++;
    await until(
      async () => (await this.addresses()).some((info) => info.scope === "link" && info.tentative !== true),
      "the guest's link-local",
    );
    await this.netns.exec(
      "dhclient",
      ["-6", "-D", "LL", "-1", "-pf", this.pidFile(), "-lf", join(this.dir, `${this.netns.name}.leases`), "eth0"],
      {
        timeoutMs: 60_000,
      },
    );
    return until(async () => {
      const addresses = await this.globalAddresses();
      return addresses.includes(wanted) ? addresses : undefined;
    }, `the reserved address ${wanted}`);
  }

  stopDhclient(): void {
    const pid = Number((existsSync(this.pidFile()) ? readFileSync(this.pidFile(), "utf8") : "").trim());
    if (Number.isInteger(pid) && pid > 1) {
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        // already gone
      }
    }
  }

  private pidFile(): string {
    return join(this.dir, `${this.netns.name}-${this.round}.pid`);
  }
}

/** Our tables: ebtables `nat` and ip6tables `raw` (PREROUTING, before the bridge learns). */
async function saved(netns: Netns, which: "eb" | "ip6"): Promise<SavedTable> {
  const table = which === "eb" ? "nat" : "raw";
  const { stdout } = await netns.exec(which === "eb" ? "ebtables-nft-save" : "ip6tables-nft-save", ["-c", "-t", table]);
  return parseSave(stdout, table);
}

/** Our chains for a device, in both tables. */
async function chainsOf(netns: Netns, device: string): Promise<{ eb: boolean; ip6: boolean }> {
  const [eb, ip6] = await Promise.all([saved(netns, "eb"), saved(netns, "ip6")]);
  return { eb: eb.chains.has(`V6A-${device}`), ip6: ip6.chains.has(`V6A-${device}`) && ip6.chains.has(`V6N-${device}`) };
}

/**
 * Issue 7's acceptance on a dom0-like host: the real `v6agent run` daemon (xtables, its host side
 * in the dom0 namespace) talks to the XAPI simulator and to a management server over the real
 * channel; the simulator's VIFs are real `vif<domid>.<n>` veths on xenbr0, whose uplink port
 * leads to a router namespace running dnsmasq (RA + DHCPv6 for reserved DUID-LLs only).
 */
describe.skipIf(skip !== undefined)("v6agent in a XenServer dom0 (simulated XAPI, real kernel)", () => {
  let dir: string;
  let dom0: Netns;
  let routerNs: Netns;
  let victim: XenGuest;
  let attacker: XenGuest;
  let router: Router;
  let sim: RunningXapiSimulator;
  let cloud: XenServerHypervisor;
  let mgmt: ManagementServer;
  let daemon: ChildProcess;
  let inspector: Firewall;
  let victimVm: { ref: string; uuid: string };
  let attackerVm: { ref: string; uuid: string };
  let routerLinkLocal: string;
  let victimDevice: string;
  const namespaces: Netns[] = [];

  const vifReports = (since: number, mac: string): VifReport[] =>
    mgmt.reports
      .query({ since, method: "vif.report", hostId: HOST_ID })
      .map((report) => report.params as VifReport)
      .filter((report) => report.mac === mac);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "xen-agent-"));
    for (const prefix of ["xa0", "xar", "xav", "xaa"]) namespaces.push(await Netns.create(prefix));
    [dom0, routerNs] = namespaces as [Netns, Netns];
    victim = new XenGuest(namespaces[2] as Netns, victimMac, dir);
    attacker = new XenGuest(namespaces[3] as Netns, attackerMac, dir);

    // dom0: xenbr0 (the management PIF's network) with eth0, the trusted uplink, towards the router.
    await dom0.exec("ip", ["link", "add", "xenbr0", "type", "bridge"]);
    await dom0.exec("ip", ["link", "set", "xenbr0", "up"]);
    await vethBetween(dom0, "eth0", routerNs, "eth0");
    await dom0.exec("ip", ["link", "set", "eth0", "master", "xenbr0"]);
    const routerMac = (await routerNs.ipJson<{ address: string }[]>(["link", "show", "eth0"]))[0]?.address as string;
    routerLinkLocal = eui64LinkLocal(parseMac(routerMac));
    router = await Router.start({ netns: routerNs, interface: "eth0", network, gateway: GATEWAY, workDir: dir, raIntervalSeconds: 3 });

    const guestOf = new Map<string, string>();
    sim = await startXapiSimulator({ dom0: new NetnsDom0({ dom0: dom0.name, guestNetns: (uuid) => guestOf.get(uuid) }) });
    victimVm = sim.seed.vm({ nameLabel: "victim" });
    attackerVm = sim.seed.vm({ nameLabel: "attacker" });
    guestOf.set(victimVm.uuid, victim.netns.name);
    guestOf.set(attackerVm.uuid, attacker.netns.name);
    // The cloud's own XAPI client: it starts and reboots VMs; the agent only plugs NICs.
    cloud = new XenServerHypervisor({ url: sim.url, auth: { user: "root", password: "xenroot" } });
    await cloud.connect();
    await cloud.startVm(victimVm.uuid);
    await cloud.startVm(attackerVm.uuid);

    mgmt = new ManagementServer({ tokens: [TOKEN], heartbeatIntervalMs: 2_000 });
    const { url } = await mgmt.start();
    writeFileSync(join(dir, "xapi-password"), "xenroot\n");
    writeFileSync(
      join(dir, "config.yaml"),
      [
        `hostId: ${HOST_ID}`,
        "management:",
        `  servers: [${url}]`,
        `  token: ${TOKEN}`,
        "  heartbeatSeconds: 2",
        "  timeoutSeconds: 10",
        "hypervisor:",
        "  kind: xenserver",
        "  xapi:",
        `    url: ${sim.url}`,
        "    username: root",
        `    passwordFile: ${join(dir, "xapi-password")}`,
        "network:",
        "  uplink: eth0",
        "firewall:",
        "  backend: xtables",
        `stateDir: ${join(dir, "state")}`,
        `netns: ${dom0.name}`,
        "logLevel: info",
        "",
      ].join("\n"),
    );
    const log = openSync(join(dir, "agent.log"), "a");
    daemon = spawn(process.execPath, [CLI, "run", "--config", join(dir, "config.yaml")], { stdio: ["ignore", log, log] });
    await mgmt.waitForAgent(HOST_ID, 30_000).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${readFileSync(join(dir, "agent.log"), "utf8").slice(-3000)}`);
    });
    // Read-only view of dom0's rules for the assertions (counters, which ports exist).
    inspector = await createFirewall({ backend: "xtables", netns: dom0.name });
  });

  afterAll(async () => {
    if (daemon !== undefined && daemon.exitCode === null) {
      const exited = new Promise((resolve) => daemon.once("exit", resolve));
      daemon.kill("SIGTERM");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
      if (daemon.exitCode === null) daemon.kill("SIGKILL");
    }
    victim?.stopDhclient();
    attacker?.stopDhclient();
    await router?.stop();
    await cloud?.close();
    await sim?.close();
    await mgmt?.stop();
    for (const netns of namespaces) await netns.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses VLAN 4095 and a /48 at the protocol level before any XAPI call", async () => {
    sim.clearCalls();
    const xapiWork = () => sim.calls.filter((call) => !/^(event\.from|session\.|task\.)/.test(call.method)).map((call) => call.method);
    for (const [params, field] of [
      [{ networkId: "bad-vlan", prefix: network.cidr, vlan: 4095 }, "params.vlan"],
      [{ networkId: "bad-prefix", prefix: "2001:db8:79::/48" }, "params.prefix"],
    ] as const) {
      const error = (await mgmt.call(HOST_ID, "network.ensure", params, { validate: false }).catch((e: unknown) => e)) as RemoteError;
      expect(error.rpc?.code).toBe(-32602);
      expect(error.field).toBe(field);
      expect(error.message).toMatch(field === "params.vlan" ? /4095|4094/ : /\/64/);
    }
    expect(xapiWork()).toEqual([]);
  });

  it("ensures the network: xenbr0 gets its policy, unknown vif/tap ports fail closed", async () => {
    const result = await mgmt.call(HOST_ID, "network.ensure", { networkId: "net-79", prefix: network.cidr, gateway: GATEWAY });
    expect(result).toMatchObject({ networkId: "net-79", bridge: "xenbr0" });
    const eb = await saved(dom0, "eb");
    expect(eb.chains.get("V6B-xenbr0")?.rules).toEqual(["-i eth0 -j RETURN", "-i vif+ -j DROP", "-i tap+ -j DROP"]);
    expect(eb.chains.get("PREROUTING")?.rules[0]).toBe("-j V6AGENT");
  });

  it("plugs the victim's VIF over the channel, protected and reported; the report becomes the reservation", async () => {
    const since = mgmt.reports.last;
    const started = process.hrtime.bigint();
    const report = await mgmt.call(HOST_ID, "nic.plug", {
      vmUuid: victimVm.uuid,
      networkId: "net-79",
      mac: victimMac,
      ipv6: [victimAddress],
    });
    const plugMs = Number(process.hrtime.bigint() - started) / 1e6;
    victimDevice = `vif${sim.db.get("VM", victimVm.ref).domid}.0`;
    expect(report).toMatchObject({
      vmUuid: victimVm.uuid,
      mac: victimMac,
      state: "protected",
      device: victimDevice,
      duidLL: `00:03:00:01:${victimMac}`,
      linkLocal: eui64LinkLocal(victimMac),
      ipv6: [victimAddress],
    });
    expect(await chainsOf(dom0, victimDevice)).toEqual({ eb: true, ip6: true });
    const reported = await until(
      () => vifReports(since, victimMac).find((r) => r.state === "protected" && r.device === victimDevice),
      "the vif.report",
    );
    console.log(`[measure] nic.plug over the channel to a protected vif: ${plugMs.toFixed(0)} ms`);

    // The management side builds the router's reservation from the report alone.
    const mac = parseMac((reported.duidLL as string).replace(/^00:03:00:01:/, ""));
    expect(duidLl(mac)).toBe(reported.duidLL);
    await router.reserve({ mac, address: (reported.ipv6 as string[])[0] as string });
    expect(await victim.dhcp(victimAddress)).toEqual([victimAddress]);
    await until(async () => (await victim.defaultGateways()).includes(routerLinkLocal), "the router's default route");
  });

  it("survives a XAPI session expiry in the middle of the attacker's plug, and protects it before its first frame", async () => {
    // The attacker floods rogue RAs from the instant its NIC exists; the router side must never see one.
    const capture = join(dir, "router.pcap");
    const tcpdump: DaemonHandle = startDaemon(
      "tcpdump",
      ["-i", "eth0", "-n", "-U", "-w", capture, `ether src ${attackerMac} and icmp6 and ip6[40] == 134`],
      { netns: routerNs.name },
    );
    const stopFlood = join(dir, "stop-flood");
    const floodReady = join(dir, "flood-ready");
    const flood = run("/usr/bin/python3", ["-c", FLOOD_SCRIPT, attackerMac, eui64LinkLocal(attackerMac), stopFlood, floodReady], {
      netns: attacker.netns.name,
      timeoutMs: 90_000,
    });
    try {
      // scapy takes a while to load: plug only once the flood is waiting for the NIC.
      await until(() => existsSync(floodReady), "the flood to be ready");
      await new Promise((resolve) => setTimeout(resolve, 500));
      sim.addFault({ kind: "expire-session", method: "VIF.plug", times: 2 });
      const report = await mgmt.call(HOST_ID, "nic.plug", {
        vmUuid: attackerVm.uuid,
        networkId: "net-79",
        mac: attackerMac,
        ipv6: [attackerAddress],
      });
      expect(sim.callCount("VIF.plug")).toBeGreaterThanOrEqual(3);
      expect(sim.db.get("VM", attackerVm.ref).VIFs).toHaveLength(1);
      expect(report).toMatchObject({ state: "protected", device: `vif${sim.db.get("VM", attackerVm.ref).domid}.0` });
      await router.reserve({ mac: attackerMac, address: (report.ipv6 as string[])[0] as string });
      await new Promise((resolve) => setTimeout(resolve, 1000));
    } finally {
      writeFileSync(stopFlood, "");
    }
    const sent = Number((await flood).stdout.trim().split("\n").pop());
    await new Promise((resolve) => setTimeout(resolve, 300));
    await tcpdump.stop();
    // -U writes the capture header at once, so a readable capture exists even with no packet in it.
    const seen = (await run("tcpdump", ["-n", "-r", capture])).stdout.trim();
    expect(sent).toBeGreaterThan(50);
    expect(seen).toBe("");
    expect(await attacker.dhcp(attackerAddress)).toEqual([attackerAddress]);
  });

  const attacks: [AttackKind, keyof Omit<PortCounters, "device">][] = [
    ["ra", "ra"],
    ["ra-hbh", "ra"],
    ["ra-dstopt", "ra"],
    ["ra-many-ext", "ra"],
    ["redirect", "ra"],
    ["ra-frag", "fragment"],
    // ip6tables, not ebtables, judges all IPv6 now: an atomic-fragment RA counts as a fragment (as on nft).
    ["ra-atomic-frag", "fragment"],
    ["dhcp6-advertise", "dhcpv6Server"],
    ["dhcp6-reply", "dhcpv6Server"],
    ["dhcp6-reply-other-port", "dhcpv6Server"],
    ["na-spoof", "spoof"],
    ["spoof-mac", "spoof"],
    ["spoof-ip", "spoof"],
  ];

  it.each(attacks)(
    "drops %s from the second guest at its vif (counted as %s); the victim keeps its router and address",
    async (kind, counter) => {
      const device = `vif${sim.db.get("VM", attackerVm.ref).domid}.0`;
      const countersOf = async () => (await inspector.counters()).find((c) => c.device === device) as PortCounters;
      const before = await countersOf();
      const sent = await sendAttack(
        attacker.netns.name,
        "eth0",
        kind,
        attackOn(kind, attackerMac, { mac: victimMac, address: victimAddress }),
      );
      expect(sent).toBeGreaterThan(0);
      await until(
        async () => (await countersOf())[counter].packets > before[counter].packets,
        `the ${counter} counter of ${device}`,
        15_000,
      );
      expect(await victim.defaultGateways()).toEqual([routerLinkLocal]);
      expect(await victim.globalAddresses()).toEqual([victimAddress]);
      const poisoned = (await victim.neighbourMacs()).filter(
        (n) => n.lladdr === attackerMac && n.dst !== eui64LinkLocal(attackerMac) && n.dst !== attackerAddress,
      );
      expect(poisoned).toEqual([]);
    },
  );

  it("follows a reboot (new domid): old chains gone, new ones in place, reported; the guest keeps its address", async () => {
    const oldDevice = victimDevice;
    const since = mgmt.reports.last;
    const started = process.hrtime.bigint();
    await cloud.connection.callAsync("VM.hard_reboot", victimVm.ref);
    const rebootedMs = Number(process.hrtime.bigint() - started) / 1e6;
    const newDevice = `vif${sim.db.get("VM", victimVm.ref).domid}.0`;
    expect(newDevice).not.toBe(oldDevice);
    await until(async () => {
      const [oldChains, newChains] = await Promise.all([chainsOf(dom0, oldDevice), chainsOf(dom0, newDevice)]);
      return !oldChains.eb && !oldChains.ip6 && newChains.eb && newChains.ip6;
    }, "the rules to move to the new device");
    const movedMs = Number(process.hrtime.bigint() - started) / 1e6;
    const reported = await until(
      () => vifReports(since, victimMac).find((r) => r.state === "protected" && r.device === newDevice),
      "a report naming the new device",
    );
    expect(reported).toMatchObject({ vmUuid: victimVm.uuid, duidLL: duidLl(victimMac), ipv6: [victimAddress] });
    console.log(
      `[measure] VM.hard_reboot returned after ${rebootedMs.toFixed(0)} ms; rules moved ${oldDevice} -> ${newDevice} ${movedMs.toFixed(0)} ms after the reboot call`,
    );
    victimDevice = newDevice;
    // The guest's NIC is a new device: its address went with the old domain and comes back by DUID-LL.
    expect(await victim.dhcp(victimAddress)).toEqual([victimAddress]);
  });

  it("keeps converging through a session expiry of its event watch", async () => {
    sim.addFault({ kind: "expire-session", method: "event.from", times: 2 });
    const since = mgmt.reports.last;
    await cloud.connection.callAsync("VM.hard_reboot", victimVm.ref);
    const newDevice = `vif${sim.db.get("VM", victimVm.ref).domid}.0`;
    await until(
      () => vifReports(since, victimMac).find((r) => r.state === "protected" && r.device === newDevice),
      "a report naming the device after the second reboot",
    );
    expect(await chainsOf(dom0, newDevice)).toEqual({ eb: true, ip6: true });
    expect(await chainsOf(dom0, victimDevice)).toEqual({ eb: false, ip6: false });
    victimDevice = newDevice;
  });
});

describe.skipIf(skip !== undefined)("v6agent on an Open vSwitch XenServer host", () => {
  it("refuses to start, saying why", async () => {
    const dir = mkdtempSync(join(tmpdir(), "xen-ovs-"));
    const sim = await startXapiSimulator({ networkBackend: "openvswitch" });
    const mgmt = new ManagementServer({ tokens: [TOKEN] });
    try {
      const { url } = await mgmt.start();
      writeFileSync(join(dir, "xapi-password"), "xenroot\n");
      writeFileSync(
        join(dir, "config.yaml"),
        [
          "hostId: xen-ovs-test",
          "management:",
          `  servers: [${url}]`,
          `  token: ${TOKEN}`,
          "hypervisor:",
          "  kind: xenserver",
          "  xapi:",
          `    url: ${sim.url}`,
          `    passwordFile: ${join(dir, "xapi-password")}`,
          "firewall:",
          "  backend: xtables",
          `stateDir: ${join(dir, "state")}`,
          "",
        ].join("\n"),
      );
      const child = spawn(process.execPath, [CLI, "run", "--config", join(dir, "config.yaml")], { stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      child.stdout.on("data", (chunk) => {
        output += String(chunk);
      });
      child.stderr.on("data", (chunk) => {
        output += String(chunk);
      });
      const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
      expect(code).not.toBe(0);
      expect(output).toMatch(/Open vSwitch/);
      expect(output).toMatch(/ebtables|bridge/);
      expect(mgmt.agents()).toEqual([]);
      // Nothing was changed in XAPI (the client's own initial record fetch is all it did).
      expect(sim.calls.filter((call) => /\.(create|plug|unplug|destroy|add_to|remove_from|create_VLAN)/.test(call.method))).toEqual([]);
    } finally {
      await mgmt.stop();
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Rogue RAs from the guest's eth0 as fast as it can send, from the moment the interface is up
 * until the stop file exists; prints how many went out.
 */
const FLOOD_SCRIPT = `
import os, sys, time
from scapy.all import Ether, IPv6, ICMPv6ND_RA, ICMPv6NDOptPrefixInfo, conf
mac, ll, stop, ready = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
frame = bytes(Ether(src=mac, dst="33:33:00:00:00:01") / IPv6(src=ll, dst="ff02::1") / ICMPv6ND_RA(routerlifetime=1800)
              / ICMPv6NDOptPrefixInfo(prefix="2001:db8:bad::", prefixlen=64))
sent, sock, deadline = 0, None, time.time() + 60
open(ready, "w").close()
while not os.path.exists(stop) and time.time() < deadline:
    try:
        if sock is None:
            sock = conf.L2socket(iface="eth0")
        sock.send(frame)
        sent += 1
    except Exception:
        sock = None
        time.sleep(0.001)
print(sent)
`;

import { until } from "../../../support/wait.js";

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { duidLl, eui64LinkLocal, type Mac, parseIpv6Network, parseMac } from "../../../src/addressing/index.js";
import { run } from "../../../src/exec.js";
import { XenServerHypervisor } from "../../../src/hypervisor/xenserver/index.js";
import { Router } from "../../../src/lab/router.js";
import { NetnsDom0, type RunningXapiSimulator, startXapiSimulator } from "../../../src/lab/xapi-sim/index.js";
import { ManagementServer } from "../../../src/mgmt/index.js";
import type { VifReport } from "../../../src/protocol/index.js";
import { Netns, vethBetween } from "../../support/netns.js";
import { skipReason } from "../../support/requirements.js";
import { until } from "../../support/wait.js";

const CLI = new URL("../../../dist/src/cli.js", import.meta.url).pathname;
const skip =
  skipReason({ root: true, commands: ["ip", "nft", "ebtables", "ip6tables", "dnsmasq", "dhclient", "timeout", "/usr/bin/python3"] }) ??
  (existsSync(CLI) ? undefined : "needs `npm run build` (dist/src/cli.js)");
if (skip?.startsWith("needs `npm") && process.env.CI) throw new Error(`CI must run every test, but this one ${skip}`);

const network = parseIpv6Network("2001:db8:7e:1::/64");
const GATEWAY = "2001:db8:7e:1::1";
const TOKEN = "identity-evidence-token";
const HOST_ID = "identity-evidence-host";
/** One DUID-LLT, as dhclient made it once on a template image that C and D were cloned from. */
const TEMPLATE_DUID = [0x00, 0x01, 0x00, 0x01, 0x2b, 0x3c, 0x4d, 0x5e, 0x52, 0x54, 0x00, 0x7e, 0x00, 0xff];

/** A Solicit with a DUID-LLT, exactly once (scapy): what a stock dhclient sends first. */
const ONE_SOLICIT = `import sys
from scapy.all import Ether, IPv6, UDP, Raw, sendp
mac, ll = sys.argv[1], sys.argv[2]
duid = bytes.fromhex("000100012b3c4d5f" + mac.replace(":", ""))
message = bytes.fromhex("01abcdef") + b"\\x00\\x01" + len(duid).to_bytes(2, "big") + duid + bytes.fromhex("0003000c000000070000000000000000")
sendp(Ether(src=mac, dst="33:33:00:01:00:02") / IPv6(src=ll, dst="ff02::1:2") / UDP(sport=546, dport=547) / Raw(message), iface="eth0", verbose=False)
`;

interface Guest {
  name: string;
  mac: Mac;
  address: string;
  netns: Netns;
  vm: { ref: string; uuid: string };
}

/**
 * Issue 18's acceptance: the real `v6agent run` daemon on a dom0-like host (XAPI simulator, real
 * kernel, each firewall backend), four guests behind its ports and a management server taking
 * its reports. A sends its DUID-LL (dhclient -D LL) and is reported matching; B sends one
 * Solicit with a DUID-LLT and is reported mismatched from that one message; C and D, cloned
 * from one image, send one DUID-LLT between them and are flagged as sharing it — in vif.report,
 * in host.diagnose, in `v6agent diag` (from the daemon's saved evidence) and in the metrics.
 */
describe.skipIf(skip !== undefined).each(["nft", "xtables"] as const)("DHCPv6 identity evidence (%s backend)", (backend) => {
  let dir: string;
  let dom0: Netns;
  let routerNs: Netns;
  let router: Router;
  let sim: RunningXapiSimulator;
  let cloud: XenServerHypervisor;
  let mgmt: ManagementServer;
  let daemon: ChildProcess;
  const guests: Guest[] = [];
  const namespaces: Netns[] = [];
  const metricsPort = 19_000 + Math.floor(Math.random() * 20_000);

  const byName = (name: string) => guests.find((guest) => guest.name === name) as Guest;
  const lastReport = (guest: Guest): VifReport | undefined =>
    mgmt.reports
      .query({ since: 0, method: "vif.report", hostId: HOST_ID })
      .map((report) => report.params as VifReport)
      .filter((report) => report.mac === guest.mac)
      .at(-1);
  const reportWithDuid = (guest: Guest) =>
    until(() => lastReport(guest)?.observedDuid && lastReport(guest), `${guest.name}'s observed DUID`, 30_000);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "v6agent-identity-"));
    for (const prefix of ["ie0", "ier", "iea", "ieb", "iec", "ied"]) namespaces.push(await Netns.create(prefix));
    [dom0, routerNs] = namespaces as [Netns, Netns];
    await dom0.exec("ip", ["link", "add", "xenbr0", "type", "bridge"]);
    await dom0.exec("ip", ["link", "set", "xenbr0", "up"]);
    await vethBetween(dom0, "eth0", routerNs, "eth0");
    await dom0.exec("ip", ["link", "set", "eth0", "master", "xenbr0"]);
    router = await Router.start({ netns: routerNs, interface: "eth0", network, gateway: GATEWAY, workDir: dir, raIntervalSeconds: 3 });

    const guestOf = new Map<string, string>();
    sim = await startXapiSimulator({ dom0: new NetnsDom0({ dom0: dom0.name, guestNetns: (uuid) => guestOf.get(uuid) }) });
    cloud = new XenServerHypervisor({ url: sim.url, auth: { user: "root", password: "xenroot" } });
    await cloud.connect();
    for (const [index, name] of ["a", "b", "c", "d"].entries()) {
      const vm = sim.seed.vm({ nameLabel: `guest-${name}` });
      const netns = namespaces[index + 2] as Netns;
      guestOf.set(vm.uuid, netns.name);
      guests.push({ name, mac: parseMac(`52:54:00:7e:00:0${index + 1}`), address: `2001:db8:7e:1::${index + 10}`, netns, vm });
      await cloud.startVm(vm.uuid);
    }

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
        "hypervisor:",
        "  kind: xenserver",
        "  xapi:",
        `    url: ${sim.url}`,
        "    username: root",
        `    passwordFile: ${join(dir, "xapi-password")}`,
        "network:",
        "  uplink: eth0",
        "firewall:",
        `  backend: ${backend}`,
        "metrics:",
        `  listen: 127.0.0.1:${metricsPort}`,
        `stateDir: ${join(dir, "state")}`,
        `netns: ${dom0.name}`,
        "",
      ].join("\n"),
    );
    const log = openSync(join(dir, "agent.log"), "a");
    daemon = spawn(process.execPath, [CLI, "run", "--config", join(dir, "config.yaml")], { stdio: ["ignore", log, log] });
    await mgmt.waitForAgent(HOST_ID, 30_000).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${readFileSync(join(dir, "agent.log"), "utf8").slice(-3000)}`);
    });
    await mgmt.call(HOST_ID, "network.ensure", { networkId: "net-7e", prefix: network.cidr, gateway: GATEWAY });
    for (const guest of guests) {
      const report = (await mgmt.call(HOST_ID, "nic.plug", {
        vmUuid: guest.vm.uuid,
        networkId: "net-7e",
        mac: guest.mac,
        ipv6: [guest.address],
      })) as VifReport;
      expect(report).toMatchObject({ state: "protected", duidLL: duidLl(guest.mac) });
      expect(report.observedDuid).toBeUndefined();
      // The management side reserves each address for the VIF's DUID-LL, as the seed's VR does.
      await router.reserve({ mac: guest.mac, address: guest.address });
    }
    for (const guest of guests) {
      await until(async () => {
        const links = await guest.netns.ipJson<{ addr_info: { scope: string; tentative?: boolean }[] }[]>([
          "-6",
          "addr",
          "show",
          "dev",
          "eth0",
        ]);
        return links[0]?.addr_info.some((a) => a.scope === "link" && a.tentative !== true);
      }, `${guest.name}'s link-local address`);
    }
  });

  afterAll(async () => {
    if (daemon !== undefined && daemon.exitCode === null) {
      const exited = new Promise((resolve) => daemon.once("exit", resolve));
      daemon.kill("SIGTERM");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
      if (daemon.exitCode === null) daemon.kill("SIGKILL");
    }
    for (const guest of guests) await killPidFile(join(dir, `${guest.name}.pid`));
    await router?.stop();
    await cloud?.close();
    await sim?.close();
    await mgmt?.stop();
    for (const netns of namespaces) await netns.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a guest sending its DUID-LL is reported matching, and gets its reserved address", async () => {
    const a = byName("a");
    await a.netns.exec("dhclient", ["-6", "-D", "LL", "-1", "-pf", join(dir, "a.pid"), "-lf", join(dir, "a.leases"), "eth0"], {
      timeoutMs: 60_000,
    });
    const report = await reportWithDuid(a);
    expect(report.observedDuid).toEqual({
      duid: duidLl(a.mac),
      type: 3,
      typeName: "DUID-LL",
      iaid: expect.any(Number),
      matchesDuidLL: true,
    });
    const addresses = await a.netns.ipJson<{ addr_info: { local: string }[] }[]>(["-6", "addr", "show", "dev", "eth0"]);
    expect(addresses[0]?.addr_info.map((info) => info.local)).toContain(a.address);
  });

  it("a guest sending a DUID-LLT is reported mismatched from its one Solicit", async () => {
    const b = byName("b");
    await b.netns.exec("/usr/bin/python3", ["-c", ONE_SOLICIT, b.mac, eui64LinkLocal(b.mac)]);
    const report = await reportWithDuid(b);
    expect(report.observedDuid).toEqual({
      duid: `00:01:00:01:2b:3c:4d:5f:${b.mac}`,
      type: 1,
      typeName: "DUID-LLT",
      iaid: 7,
      matchesDuidLL: false,
    });
  });

  it("two guests cloned from one image (one DUID-LLT in their lease files) are flagged as sharing it", async () => {
    const [c, d] = [byName("c"), byName("d")];
    const octal = TEMPLATE_DUID.map((byte) => `\\${byte.toString(8).padStart(3, "0")}`).join("");
    await Promise.all(
      [c, d].map(async (guest) => {
        writeFileSync(join(dir, `${guest.name}.leases`), `default-duid "${octal}";\n`);
        writeFileSync(join(dir, "empty.conf"), "");
        await guest.netns.exec(
          "timeout",
          [
            "3",
            "dhclient",
            "-6",
            "-d",
            "-1",
            "-cf",
            join(dir, "empty.conf"),
            "-lf",
            join(dir, `${guest.name}.leases`),
            "-pf",
            join(dir, `${guest.name}.pid`),
            "-sf",
            "/bin/true",
            "eth0",
          ],
          { okExitCodes: [124], timeoutMs: 20_000 },
        );
      }),
    );
    const template = TEMPLATE_DUID.map((byte) => byte.toString(16).padStart(2, "0")).join(":");
    const shared = async (guest: Guest, other: Guest) =>
      until(() => lastReport(guest)?.observedDuid?.sharedWith?.includes(other.mac) && lastReport(guest), `${guest.name} flagged`, 30_000);
    expect((await shared(c, d)).observedDuid).toMatchObject({
      duid: template,
      typeName: "DUID-LLT",
      matchesDuidLL: false,
      sharedWith: [d.mac],
    });
    expect((await shared(d, c)).observedDuid).toMatchObject({ duid: template, matchesDuidLL: false, sharedWith: [c.mac] });
  });

  it("host.diagnose and `v6agent diag` name the mismatching VIFs and the shared DUID; the metric counts them", async () => {
    const [b, c, d] = [byName("b"), byName("c"), byName("d")];
    type Check = { name: string; status: string; message: string };
    const expectIdentityChecks = (checks: Check[]) => {
      const messages = checks.filter((check) => check.name.startsWith("dhcp6.")).map((check) => `${check.status} ${check.message}`);
      expect(messages).toContainEqual(
        `warn vm ${b.vm.uuid} NIC ${b.mac}: sends DUID-LLT 00:01:00:01:2b:3c:4d:5f:${b.mac}; it will not get its reserved address; see \`v6agent guest-config --os dhclient\` (ISC dhclient's default is DUID-LLT; also debian-ifupdown, centos6)`,
      );
      expect(messages.filter((message) => message.includes("send the same DUID"))).toEqual([
        expect.stringMatching(
          new RegExp(
            `^warn vm \\S+ NIC (${c.mac}|${d.mac}) and vm \\S+ NIC (${c.mac}|${d.mac}) send the same DUID 00:01:00:01:2b:3c:4d:5e`,
          ),
        ),
      ]);
      expect(messages.some((message) => message.includes(byName("a").mac))).toBe(false);
    };
    const diagnosis = (await mgmt.call(HOST_ID, "host.diagnose", {})) as { checks: Check[] };
    expectIdentityChecks(diagnosis.checks);

    // The CLI reads what the daemon saved (coalesced writes: wait for all four).
    const saved = join(dir, "state", "dhcp-identities.json");
    await until(
      () => existsSync(saved) && (JSON.parse(readFileSync(saved, "utf8")) as { state: unknown[] }).state.length === 4,
      "the saved evidence",
    );
    const cli = await run(process.execPath, [CLI, "diag", "--config", join(dir, "config.yaml"), "--json"], {
      okExitCodes: [0, 1, 2],
      timeoutMs: 60_000,
    });
    const report = JSON.parse(cli.stdout) as { checks: Check[]; vifs: { mac: string; observedDuid?: string; duidMatches?: boolean }[] };
    expectIdentityChecks(report.checks);
    expect(report.vifs.find((vif) => vif.mac === b.mac)).toMatchObject({
      observedDuid: `DUID-LLT 00:01:00:01:2b:3c:4d:5f:${b.mac}`,
      duidMatches: false,
    });

    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^v6agent_dhcp6_duid_mismatched_vifs 3$/m);
    expect(metrics).toMatch(/^v6agent_dhcp6_duid_shared_vifs 2$/m);
  });
});

async function killPidFile(path: string): Promise<void> {
  const pid = (existsSync(path) ? readFileSync(path, "utf8") : "").trim();
  if (/^\d+$/.test(pid)) await run("kill", [pid], { okExitCodes: [0, 1] });
}

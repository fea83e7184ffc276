import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type Mac, parseIpv6Network } from "../../../src/addressing/index.js";
import { Agent } from "../../../src/agent/agent.js";
import { loadAgentConfig } from "../../../src/daemon/config.js";
import { buildAgentParts } from "../../../src/daemon/parts.js";
import type { DiagReport } from "../../../src/diag/check.js";
import { run } from "../../../src/exec.js";
import { XenServerHypervisor } from "../../../src/hypervisor/xenserver/index.js";
import { NetnsDom0, type RunningXapiSimulator, startXapiSimulator } from "../../../src/lab/xapi-sim/index.js";
import { createLogger } from "../../../src/log.js";
import { type Netns, withNetns } from "../../support/netns.js";
import { skipReason } from "../../support/requirements.js";

const CLI = new URL("../../../dist/src/cli.js", import.meta.url).pathname;
const built = existsSync(CLI) ? undefined : "needs `npm run build` (dist/src/cli.js)";
if (built && process.env.CI) throw new Error(`CI must run every test, but this one ${built}`);
const skip = built ?? skipReason({ root: true, commands: ["ip", "nft", "sysctl", "ebtables", "ip6tables"] });

const MAC_A = "52:54:00:d1:00:0a" as Mac;
const MAC_B = "52:54:00:d1:00:0b" as Mac;

/** The real CLI, as an operator runs it: `v6agent diag --config <file> [--json]`. */
async function diag(configPath: string, json: boolean): Promise<{ exitCode: number; stdout: string }> {
  const { exitCode, stdout } = await run(process.execPath, [CLI, "diag", "--config", configPath, ...(json ? ["--json"] : [])], {
    timeoutMs: 90_000,
    okExitCodes: [0, 1, 2],
  });
  return { exitCode, stdout };
}

function check(report: DiagReport, name: string) {
  const found = report.checks.find((candidate) => candidate.name === name);
  if (found === undefined) throw new Error(`no check ${name} in ${report.checks.map((c) => c.name).join(", ")}`);
  return found;
}

/** A stand-in management server: plain HTTP on loopback answering like a WebSocket endpoint. */
async function fakeManagementEndpoint(): Promise<{ server: Server; url: string }> {
  const server = createServer((_request, response) => {
    response.writeHead(426);
    response.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v6agent` };
}

/** Runs the agent's own convergence once (what `v6agent run` does before hello) and stops. */
async function converge(configPath: string, setup?: (agent: Agent, hypervisor: XenServerHypervisor) => Promise<void>): Promise<void> {
  const parts = await buildAgentParts(await loadAgentConfig(configPath), createLogger("silent"));
  const agent = new Agent({ ...parts, report: () => undefined });
  await agent.start();
  try {
    await setup?.(agent, parts.backend.hypervisor as XenServerHypervisor);
    await agent.reconcile();
  } finally {
    await agent.stop();
  }
}

async function deviceOf(sim: RunningXapiSimulator, vmRef: string): Promise<string> {
  return `vif${sim.db.get("VM", vmRef).domid as number}.0`;
}

/**
 * Acceptance for `v6agent diag` (issue 8): a XenServer host (the XAPI simulator, whose dom0 is a
 * real namespace with real veth VIFs) converged by the real agent code, then broken by hand in
 * three ways. The real CLI, reading the same config, must report each as fail with its fix, exit
 * 2, and pass again once the fixes are applied.
 */
/** Deletes a port's rules by hand, as an operator might, in each backend's own tool. */
const DELETE_PORT_BY_HAND: Record<"nft" | "xtables", (host: Netns, device: string) => Promise<void>> = {
  nft: async (host, device) => {
    await host.exec("nft", ["delete", "element", "bridge", "v6agent", "guest_ports", `{ "${device}" }`]);
  },
  xtables: async (host, device) => {
    await host.exec("ebtables", ["-t", "nat", "-D", "V6AGENT", "-i", device, "-j", `V6A-${device}`]);
    await host.exec("ebtables", ["-t", "nat", "-F", `V6A-${device}`]);
    await host.exec("ebtables", ["-t", "nat", "-X", `V6A-${device}`]);
  },
};

/** A port's rules nothing dispatches to (nft: elements of a device that is no guest port), as an interrupted removal could leave. */
const ORPHAN_CHAIN_BY_HAND: Record<"nft" | "xtables", (host: Netns, device: string) => Promise<void>> = {
  nft: async (host, device) => {
    await host.exec("nft", ["add", "element", "bridge", "v6agent", "port_mac", `{ "${device}" . 52:54:00:00:00:99 }`]);
  },
  xtables: async (host, device) => {
    await host.exec("ebtables", ["-t", "nat", "-N", `V6A-${device}`, "-P", "RETURN"]);
  },
};

/** What diag says about that port: nft loses the whole port; xtables keeps its ip6tables half. */
const MISSING_PORT_MESSAGE: Record<"nft" | "xtables", (device: string, mac: string, vm: string) => RegExp> = {
  nft: (device, mac, vm) => new RegExp(`^${device} \\(${mac}, VM ${vm}\\) has no rules: its chain is missing`),
  xtables: (device, mac, vm) => new RegExp(`^${device} \\(VM ${vm}\\) rules differ from the desired state \\(mac: live , wanted ${mac}\\)`),
};

describe.skipIf(skip !== undefined).each(["nft", "xtables"] as const)("v6agent diag on a deliberately broken host (%s)", (backend) => {
  it("reports accept_ra on a managed bridge, a deleted port chain and a stale chain as fail with the fix", async () => {
    await withNetns(["dgh"], async (host: Netns) => {
      // dom0's physical network: xenbr0 with its uplink eth0 (a veth whose far end plays the router).
      await host.exec("ip", ["link", "add", "xenbr0", "type", "bridge"]);
      await host.exec("ip", ["link", "add", "eth0", "type", "veth", "peer", "name", "rtr0"]);
      await host.exec("ip", ["link", "set", "eth0", "master", "xenbr0", "up"]);
      await host.exec("ip", ["link", "set", "xenbr0", "up"]);
      // The host must not take RAs from the guests' network (docs/operators.md, XenServer).
      for (const device of ["xenbr0", "eth0"]) {
        await host.exec("sysctl", [
          "-q",
          "-w",
          ...["accept_ra=0", "autoconf=0", "disable_ipv6=1"].map((kv) => `net/ipv6/conf/${device}/${kv}`),
        ]);
      }
      const sim = await startXapiSimulator({ dom0: new NetnsDom0({ dom0: host.name }) });
      const mgmt = await fakeManagementEndpoint();
      const dir = mkdtempSync(join(tmpdir(), "v6diag-"));
      try {
        writeFileSync(join(dir, "xapi-password"), "xenroot\n");
        writeFileSync(join(dir, "token"), "diag-test-token\n");
        const configPath = join(dir, "config.yaml");
        writeFileSync(
          configPath,
          [
            "hostId: diag-test-host",
            "management:",
            `  servers: ["${mgmt.url}"]`,
            `  tokenFile: ${join(dir, "token")}`,
            "hypervisor:",
            "  kind: xenserver",
            "  xapi:",
            `    url: ${sim.url}`,
            `    passwordFile: ${join(dir, "xapi-password")}`,
            "network:",
            "  uplink: eth0",
            "firewall:",
            `  backend: ${backend}`,
            `stateDir: ${dir}`,
            `netns: ${host.name}`,
            "",
          ].join("\n"),
        );

        const network = sim.host?.network as string;
        const vmA = sim.seed.vm({ nameLabel: "guest-a", domainType: "pvh" });
        const vmB = sim.seed.vm({ nameLabel: "guest-b", domainType: "pvh" });
        sim.seed.vif({ vm: vmA.ref, network, device: "0", mac: MAC_A });
        sim.seed.vif({ vm: vmB.ref, network, device: "0", mac: MAC_B });
        await converge(configPath, async (agent, hypervisor) => {
          await agent.ensureNetwork({ networkId: "net-diag", network: parseIpv6Network("2001:db8:d1a9::/64", "prefix") });
          await hypervisor.startVm(vmA.uuid);
          await hypervisor.startVm(vmB.uuid);
          await agent.plugNic(vmA.uuid, { networkId: "net-diag", mac: MAC_A, ipv6: ["2001:db8:d1a9::a"] });
          await agent.plugNic(vmB.uuid, { networkId: "net-diag", mac: MAC_B, ipv6: ["2001:db8:d1a9::b"] });
        });
        const portA = await deviceOf(sim, vmA.ref);
        const portB = await deviceOf(sim, vmB.ref);

        // Healthy: nothing fails, and the exit code is the worst status.
        const healthy = await diag(configPath, true);
        const before = JSON.parse(healthy.stdout) as DiagReport;
        expect(before.checks.filter((c) => c.status === "fail")).toEqual([]);
        expect(healthy.exitCode).toBe(before.worst === "ok" ? 0 : 1);
        expect(check(before, "hypervisor").message).toMatch(
          /^XAPI root@http:\/\/127\.0\.0\.1:\d+\/: xenserver 8\.2\.1 on xenhost, 2 VM\(s\), 2 running/,
        );
        expect(check(before, "bridge.xenbr0").message).toMatch(/bridge xenbr0 up, uplink eth0, 2 guest port\(s\)/);
        expect(check(before, `sysctl.${portA}`).status).toBe("ok");
        expect(check(before, "firewall.bridge.xenbr0").message).toBe(
          "bridge xenbr0 has rules (trusted eth0; unknown ports matching tap* vif* dropped)",
        );
        expect(check(before, `firewall.port.${portA}`).status).toBe("ok");
        expect(check(before, "firewall.ruleset").message).toBe(
          `live ${backend} rules are exactly the desired ones (1 bridge(s), 2 port(s))`,
        );
        expect(check(before, `mgmt.tcp.${new URL(mgmt.url).host}`).status).toBe("ok");
        expect(before.vifs?.map((row) => [row.mac, row.device, row.rulesPresent])).toEqual([
          [MAC_A, portA, true],
          [MAC_B, portB, true],
        ]);

        // Break it: accept_ra on the managed bridge; guest A's chain deleted by hand; guest B's VM
        // gone (stopped behind the agent's back, as after a crash), leaving its chain stale.
        await host.exec("sysctl", ["-q", "-w", "net/ipv6/conf/xenbr0/accept_ra=1"]);
        await DELETE_PORT_BY_HAND[backend](host, portA);
        await ORPHAN_CHAIN_BY_HAND[backend](host, "vif9.0");
        const admin = new XenServerHypervisor({ url: sim.url, auth: { user: "root", password: "xenroot" } });
        await admin.connect();
        await admin.stopVm(vmB.uuid, { force: true });
        await admin.close();

        const broken = await diag(configPath, true);
        expect(broken.exitCode).toBe(2);
        const report = JSON.parse(broken.stdout) as DiagReport;
        expect(report.worst).toBe("fail");
        expect(check(report, "sysctl.xenbr0")).toMatchObject({
          status: "fail",
          message: expect.stringMatching(/bridge xenbr0 accepts router advertisements \(accept_ra=1\)/),
          fix: `ip netns exec ${host.name} sysctl -w net/ipv6/conf/xenbr0/accept_ra=0`,
        });
        expect(check(report, `firewall.port.${portA}`)).toMatchObject({
          status: "fail",
          message: expect.stringMatching(MISSING_PORT_MESSAGE[backend](portA, MAC_A, vmA.uuid)),
          fix: expect.stringMatching(/restart the agent/),
        });
        expect(check(report, `firewall.port.${portB}`)).toMatchObject({
          status: "fail",
          message: expect.stringMatching(new RegExp(`${portB} has a stale chain \\(${MAC_B}\\)`)),
          fix: expect.stringMatching(/restart the agent/),
        });
        expect(check(report, "firewall.port.vif9.0")).toMatchObject({
          status: "fail",
          message: "vif9.0 has a stale chain that nothing dispatches to (the device is gone)",
        });
        expect(
          report.checks
            .filter((c) => c.status === "fail")
            .map((c) => c.name)
            .sort(),
        ).toEqual(["sysctl.xenbr0", `firewall.port.${portA}`, `firewall.port.${portB}`, "firewall.port.vif9.0"].sort());
        for (const failed of report.checks.filter((c) => c.status !== "ok")) expect(failed.fix).toMatch(/\S/);
        expect(check(report, "hypervisor").message).toMatch(/2 VM\(s\), 1 running/);
        expect(report.vifs?.map((row) => [row.mac, row.device, row.rulesPresent])).toEqual([
          [MAC_A, portA, false],
          [MAC_B, undefined, false],
        ]);

        // The human form says the same, one line per check and the fix under it.
        const text = await diag(configPath, false);
        expect(text.exitCode).toBe(2);
        expect(text.stdout).toContain(`[FAIL] sysctl.xenbr0: bridge xenbr0 accepts router advertisements`);
        expect(text.stdout).toContain(`       fix: ip netns exec ${host.name} sysctl -w net/ipv6/conf/xenbr0/accept_ra=0`);
        expect(text.stdout).toMatch(/\nworst: fail\n$/);

        // Apply the fixes as printed (the sysctl command; the agent's restart) and it passes.
        const [command, ...args] = (check(report, "sysctl.xenbr0").fix as string).split(" ");
        await run(command as string, args);
        await converge(configPath);
        const fixed = await diag(configPath, true);
        const after = JSON.parse(fixed.stdout) as DiagReport;
        expect(after.checks.filter((c) => c.status === "fail")).toEqual([]);
        expect(fixed.exitCode).toBe(after.worst === "ok" ? 0 : 1);
        expect(after.checks.some((c) => c.name === `firewall.port.${portB}` || c.name === "firewall.port.vif9.0")).toBe(false);
        expect(check(after, "firewall.ruleset").status).toBe("ok");
      } finally {
        await sim.close();
        await new Promise((resolve) => mgmt.server.close(resolve));
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }, 240_000);
});

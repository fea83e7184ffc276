import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StatusReport } from "../../../src/daemon/daemon-status.js";
import { run } from "../../../src/exec.js";
import { NetnsDom0, type RunningXapiSimulator, startXapiSimulator } from "../../../src/lab/xapi-sim/index.js";
import { ManagementServer, tokenHash } from "../../../src/mgmt/index.js";
import { CLI, type DaemonProcess, startAgentDaemon, writeConfig } from "../../support/agent-daemon.js";
import { attackOn, sendAttack } from "../../support/attacks.js";
import { uniqueSuffix } from "../../support/names.js";
import { Netns } from "../../support/netns.js";
import { skipReason } from "../../support/requirements.js";
import { until } from "../../support/wait.js";

const skip = skipReason({
  root: true,
  commands: ["ip", "nft", "sysctl", "/usr/bin/python3"],
  files: [{ path: CLI, from: "npm run build" }],
});

/** A TCP port on loopback that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * `v6agent status` against the real daemon (issue 19): a XenServer host (the XAPI simulator,
 * its dom0 a namespace with real veth VIFs, a guest namespace behind one of them), nft rules,
 * and `v6agent mgmt`'s server with per-host tokens. The CLI reads the daemon's socket as an
 * operator would; the metrics endpoint is read alongside, since both judge ports by the live
 * firewall and read drops when asked.
 */
describe.skipIf(skip !== undefined)("v6agent status and the metrics of a running daemon", () => {
  let workDir: string;
  let dom0: Netns;
  let guest: Netns;
  let sim: RunningXapiSimulator;
  let mgmt: ManagementServer;
  let agentsUrl: string;
  const processes: DaemonProcess[] = [];
  const hostId = `status-${uniqueSuffix()}`;
  const token = randomBytes(16).toString("hex");
  const guestMac = "52:54:00:5b:00:01";

  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), "v6-status-"));
    writeFileSync(join(workDir, "xapi-password"), "xenroot\n", { mode: 0o600 });
    dom0 = await Netns.create("v6st");
    guest = await Netns.create("v6sg");
    await dom0.exec("ip", ["link", "add", "xenbr0", "type", "bridge"]);
    await dom0.exec("ip", ["link", "set", "xenbr0", "up"]);
    sim = await startXapiSimulator({ asyncDelayMs: 0, dom0: new NetnsDom0({ dom0: dom0.name, guestNetns: () => guest.name }) });
    mgmt = new ManagementServer({ hostTokens: new Map([[tokenHash(token), hostId]]), heartbeatIntervalMs: 1_000 });
    agentsUrl = (await mgmt.start()).url;
  });

  afterAll(async () => {
    for (const child of processes) await child.stop();
    await mgmt?.stop();
    await sim?.close();
    await guest?.destroy();
    await dom0?.destroy();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  const config = (name: string, fields: { token: string; stateDir: string; metricsPort?: number }) =>
    writeConfig(
      workDir,
      {
        hostId,
        management: { servers: [agentsUrl], token: fields.token, heartbeatSeconds: 1, timeoutSeconds: 5 },
        hypervisor: { kind: "xenserver", xapi: { url: sim.url, passwordFile: join(workDir, "xapi-password") } },
        firewall: { backend: "nft" },
        netns: dom0.name,
        stateDir: fields.stateDir,
        statusSocket: join(workDir, `${name}.sock`),
        ...(fields.metricsPort === undefined ? {} : { metrics: { listen: `127.0.0.1:${fields.metricsPort}` } }),
        logLevel: "info",
      },
      `${name}.yaml`,
    );
  const daemon = (path: string) => {
    const child = startAgentDaemon(path);
    processes.push(child);
    return child;
  };
  /** `v6agent status --config <file> [--json]`, as an operator runs it. */
  const status = async (path: string, json = true) => {
    const result = await run(process.execPath, [CLI, "status", "--config", path, ...(json ? ["--json"] : [])], {
      okExitCodes: [0, 1, 3],
      timeoutMs: 30_000,
    });
    return { ...result, report: json && result.exitCode === 0 ? (JSON.parse(result.stdout) as StatusReport) : undefined };
  };
  const liveStatus = async (path: string, child: DaemonProcess, what: string, ready: (report: StatusReport) => boolean) =>
    until(
      async () => {
        if (child.child.exitCode !== null) throw new Error(`the daemon exited:\n${child.output().slice(-3000)}`);
        const { report } = await status(path);
        return report !== undefined && ready(report) ? report : undefined;
      },
      what,
      60_000,
      200,
    );

  it("says why it is not connected (a refused token), what it reconciled, and that it is gone once stopped", async () => {
    const path = config("refused", { token: "not-the-host-token", stateDir: join(workDir, "state-refused") });
    const child = daemon(path);
    const report = await liveStatus(path, child, "a refusal in the status", (candidate) => candidate.management.lastError !== undefined);
    expect(report).toMatchObject({
      phase: "running",
      hostId,
      firewall: "nft",
      hypervisor: `XAPI root@${new URL(sim.url).href}`,
      management: {
        connected: false,
        servers: [agentsUrl],
        server: agentsUrl,
        lastError: { server: agentsUrl, reason: "server refused the token: HTTP 401 Unauthorized" },
      },
      networks: [],
      ports: { protected: [], unprotected: [] },
      reconcile: { runs: 1, failures: 0, last: { changed: true, ports: 0, vms: 0 } },
    });
    expect(report.management.lastHello).toBeUndefined();
    expect(report.reconcile.last?.seconds).toBeGreaterThan(0);
    expect(report.stateProblem).toBeUndefined();
    // Root only: the socket is mode 0600.
    expect(statSync(join(workDir, "refused.sock")).mode & 0o777).toBe(0o600);

    const text = await status(path, false);
    expect(text.exitCode).toBe(0);
    expect(text.stdout).toContain(`management  NOT connected (`);
    expect(text.stdout).toContain(`server refused the token: HTTP 401 Unauthorized (${agentsUrl}, `);
    expect(text.stdout).toContain("last hello: never");

    expect(await child.stop()).toBe(0);
    expect(existsSync(join(workDir, "refused.sock"))).toBe(false);
    const gone = await status(path, false);
    expect(gone.exitCode).toBe(3);
    expect(gone.stderr).toBe(
      `v6agent: v6agent is not running: no status socket at ${join(workDir, "refused.sock")} (systemctl status v6agent)\n`,
    );
  });

  it("follows a plug and an attack at once: ports judged by the live rules, drops per port and reason, in status and metrics", async () => {
    const stateDir = join(workDir, "state-live");
    const metricsPort = await freePort();
    const path = config("live", { token, stateDir, metricsPort });
    const child = daemon(path);
    await mgmt.waitForAgent(hostId, 30_000);
    const connected = await liveStatus(path, child, "connected in the status", (report) => report.management.connected);
    expect(connected.management).toMatchObject({ state: "connected", server: agentsUrl, lastHello: { server: agentsUrl, resumed: false } });
    const scrape = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();

    const vm = sim.seed.vm({ nameLabel: "guest", domainType: "pvh" });
    await sim.simulator.operations.startVm(vm.ref);
    await mgmt.call(hostId, "network.ensure", { networkId: "net-st", prefix: "2001:db8:5b:1::/64" });
    const plugged = (await mgmt.call(hostId, "nic.plug", {
      vmUuid: vm.uuid,
      networkId: "net-st",
      mac: guestMac,
      ipv6: ["2001:db8:5b:1::a"],
    })) as { device: string; bridge: string };
    // No reconcile ran since the plug (reconcileSeconds is 60): both already count the port.
    const afterPlug = (await status(path)).report as StatusReport;
    expect(afterPlug.reconcile.runs).toBe(1);
    expect(afterPlug.networks).toEqual([{ networkId: "net-st", prefix: "2001:db8:5b:1::/64", bridge: plugged.bridge }]);
    expect(afterPlug.ports.protected).toEqual([
      { device: plugged.device, vmUuid: vm.uuid, mac: guestMac, bridge: plugged.bridge, networkId: "net-st" },
    ]);
    expect(afterPlug.ports.unprotected).toEqual([]);
    let metrics = await scrape();
    expect(metrics).toMatch(/^v6agent_ports_protected 1$/m);
    expect(metrics).toMatch(/^v6agent_ports_unprotected 0$/m);

    // The guest sends rogue RAs: dropped at its port, counted there.
    const sent = await sendAttack(
      guest.name,
      "eth0",
      "ra",
      attackOn("ra", guestMac, { mac: "52:54:00:5b:00:99", address: "2001:db8:5b:1::99" }),
    );
    expect(sent).toBeGreaterThan(0);
    const attacked = (await status(path)).report as StatusReport;
    const raDrop = attacked.drops.find((drop) => drop.port === plugged.device && drop.reason === "ra");
    expect(raDrop).toMatchObject({ vm: vm.uuid, packets: sent });
    metrics = await scrape();
    expect(metrics).toContain(`v6agent_port_drops_packets_total{port="${plugged.device}",vm="${vm.uuid}",reason="ra"} ${sent}`);
    expect(metrics).toContain(`v6agent_drops_packets_total{reason="ra"} ${sent}\n`);

    const text = await status(path, false);
    expect(text.stdout).toContain(`ports       1 protected, 0 unprotected`);
    expect(text.stdout).toContain(`            ${plugged.device} (VM ${vm.uuid}): ${sent} ra`);

    // The port's rules deleted by hand: the agent still shows the port, the firewall no longer holds it.
    await dom0.exec("nft", ["delete", "element", "bridge", "v6agent", "guest_ports", `{ "${plugged.device}" }`]);
    const bare = (await status(path)).report as StatusReport;
    expect(bare.ports.unprotected.map((port) => port.device)).toEqual([plugged.device]);
    expect(bare.ports.protected).toEqual([]);
    metrics = await scrape();
    expect(metrics).toMatch(/^v6agent_ports_unprotected 1$/m);
    expect((await status(path, false)).stdout).toContain(
      `UNPROTECTED ${plugged.device} (VM ${vm.uuid}, ${guestMac}): no rules live for it`,
    );
    expect(await child.stop()).toBe(0);

    // A desired state damaged with no good copy: the status says why the agent leaves the rules alone.
    truncateSync(join(stateDir, "desired-state.json"), 20);
    rmSync(join(stateDir, "desired-state.json.prev"), { force: true });
    const damaged = daemon(path);
    const report = await liveStatus(path, damaged, "the state problem in the status", (candidate) => candidate.phase === "running");
    expect(report.stateProblem).toMatch(/desired-state\.json is corrupt/);
    expect((await status(path, false)).stdout).toMatch(/\nstate {7}PROBLEM: state file .* is corrupt/);
    expect(await damaged.stop()).toBe(0);
  });
});

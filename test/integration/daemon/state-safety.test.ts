import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../../../src/exec.js";
import { NetnsDom0, type RunningXapiSimulator, startXapiSimulator } from "../../../src/lab/xapi-sim/index.js";
import { ManagementServer } from "../../../src/mgmt/index.js";
import { type DaemonProcess, startAgentDaemon, startCli, writeConfig } from "../../support/agent-daemon.js";
import { uniqueSuffix } from "../../support/names.js";
import { Netns } from "../../support/netns.js";
import { skipReason } from "../../support/requirements.js";
import { until } from "../../support/wait.js";

const skip = skipReason({ root: true, commands: ["ip", "nft", "sysctl"] });

/**
 * The daemon's own files on a bad day (issue 17, items 5 and 6): a desired-state file damaged with
 * no good copy never costs a guest its rules, a second daemon on one state directory and an
 * unusable state directory end with a clear error and a non-zero exit.
 */
describe.skipIf(skip !== undefined)("v6agent run and its state directory", () => {
  let workDir: string;
  let dom0: Netns;
  let sim: RunningXapiSimulator;
  let mgmt: ManagementServer;
  let agentsUrl: string;
  const processes: DaemonProcess[] = [];
  const token = randomBytes(16).toString("hex");

  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), "v6-state-safety-"));
    writeFileSync(join(workDir, "xapi-password"), "xenroot\n", { mode: 0o600 });
    dom0 = await Netns.create("v6ss");
    await dom0.exec("ip", ["link", "add", "xenbr0", "type", "bridge"]);
    await dom0.exec("ip", ["link", "set", "xenbr0", "up"]);
    sim = await startXapiSimulator({ asyncDelayMs: 0, dom0: new NetnsDom0({ dom0: dom0.name }) });
    mgmt = new ManagementServer({ tokens: [token], heartbeatIntervalMs: 1_000 });
    agentsUrl = (await mgmt.start()).url;
  });

  afterAll(async () => {
    for (const child of processes) await child.stop();
    await mgmt?.stop();
    await sim?.close();
    await dom0?.destroy();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  const config = (hostId: string, stateDir: string) =>
    writeConfig(
      workDir,
      {
        hostId,
        management: { servers: [agentsUrl], token, heartbeatSeconds: 1, timeoutSeconds: 5 },
        hypervisor: { kind: "xenserver", xapi: { url: sim.url, passwordFile: join(workDir, "xapi-password") } },
        firewall: { backend: "nft" },
        netns: dom0.name,
        stateDir,
        logLevel: "info",
      },
      `${hostId}.yaml`,
    );
  const daemon = (path: string) => {
    const child = startAgentDaemon(path);
    processes.push(child);
    return child;
  };
  const liveTable = async () => (await run("nft", ["list", "table", "bridge", "v6agent"], { netns: dom0.name })).stdout;

  it("with a damaged desired state and no good copy, keeps every live rule, says so in hello and diag, and waits for state.sync", async () => {
    const hostId = `safe-${uniqueSuffix()}`;
    const stateDir = join(workDir, `state-${hostId}`);
    const path = config(hostId, stateDir);
    const vm = sim.seed.vm({ nameLabel: "guest", domainType: "pvh" });
    // The cloud starts its VMs itself; here the simulator's own operation does.
    await sim.simulator.operations.startVm(vm.ref);

    const first = daemon(path);
    await mgmt.waitForAgent(hostId, 30_000);
    await mgmt.call(hostId, "network.ensure", { networkId: "net-s", prefix: "2001:db8:5a:1::/64" });
    const plugged = (await mgmt.call(hostId, "nic.plug", {
      vmUuid: vm.uuid,
      networkId: "net-s",
      mac: "52:54:00:5a:00:01",
      ipv6: ["2001:db8:5a:1::a"],
    })) as { state: string; device: string };
    expect(plugged.state).toBe("protected");
    const before = await liveTable();
    expect(before).toContain(plugged.device);
    expect(await first.stop()).toBe(0);

    // Damage: the file truncated mid-write by something else, and its previous copy gone too.
    truncateSync(join(stateDir, "desired-state.json"), 20);
    rmSync(join(stateDir, "desired-state.json.prev"), { force: true });

    const since = mgmt.reports.last;
    const second = daemon(path);
    const [hello] = await mgmt.reports.wait({ since, method: "agent.hello", hostId }, 30_000);
    if (hello === undefined) throw new Error(second.output().slice(-3000));
    expect((hello.params as { stateProblem?: string }).stateProblem).toMatch(/desired-state\.json is corrupt/);
    expect(await liveTable()).toBe(before);
    await expect(mgmt.call(hostId, "nic.unplug", { vmUuid: vm.uuid, mac: "52:54:00:5a:00:01" })).rejects.toMatchObject({
      rpc: { message: expect.stringMatching(/until state.sync/) },
    });
    const diagnosis = (await mgmt.call(hostId, "host.diagnose", {})) as { checks: { name: string; status: string }[] };
    expect(diagnosis.checks.find((check) => check.name === "agent.state")?.status).toBe("fail");
    expect(await liveTable()).toBe(before);
    expect(existsSync(join(stateDir, "desired-state.json"))).toBe(false);

    // The server's full state makes the agent whole again.
    await mgmt.call(hostId, "state.sync", {
      networks: [{ networkId: "net-s", prefix: "2001:db8:5a:1::/64" }],
      vms: [{ uuid: vm.uuid, nics: [{ networkId: "net-s", mac: "52:54:00:5a:00:01", ipv6: ["2001:db8:5a:1::a"] }] }],
    });
    await until(() => existsSync(join(stateDir, "desired-state.json")), "the state file written again");
    expect(await liveTable()).toContain(plugged.device);
    await second.stop();
  });

  it("refuses a second daemon on the same state directory, naming the first one's pid", async () => {
    const hostId = `twin-${uniqueSuffix()}`;
    const stateDir = join(workDir, `state-${hostId}`);
    const path = config(hostId, stateDir);
    const first = daemon(path);
    await mgmt.waitForAgent(hostId, 30_000);
    const second = daemon(path);
    expect(await second.exited).not.toBe(0);
    expect(second.output()).toContain(`another v6agent (pid ${first.child.pid}) is running with stateDir ${stateDir}`);
    expect(first.child.exitCode).toBeNull();
    expect(await first.stop()).toBe(0);
    // Its lock goes with it: the next start is fine.
    const third = daemon(path);
    await until(() => third.output().includes("converged before hello"), "the third daemon to start");
    await third.stop();
  });

  it("exits non-zero with the path when the state directory cannot be used (a file stands there)", async () => {
    const hostId = `nodir-${uniqueSuffix()}`;
    const stateDir = join(workDir, `state-${hostId}`);
    writeFileSync(stateDir, "not a directory");
    const child = startCli(["run", "--config", config(hostId, stateDir)]);
    processes.push(child);
    expect(await child.exited).not.toBe(0);
    expect(child.output()).toContain(`stateDir ${stateDir} cannot be used`);
  });
});

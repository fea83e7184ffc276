import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HostCheck } from "../../../src/daemon/host-check.js";
import { run } from "../../../src/exec.js";
import { NetnsDom0, type RunningXapiSimulator, startXapiSimulator } from "../../../src/lab/xapi-sim/index.js";
import { ManagementServer } from "../../../src/mgmt/index.js";
import { CLI, type DaemonProcess, startAgentDaemon, writeConfig } from "../../support/agent-daemon.js";
import { uniqueSuffix } from "../../support/names.js";
import { Netns } from "../../support/netns.js";
import { skipReason } from "../../support/requirements.js";

const skip = skipReason({ root: true, commands: ["ip", "nft", "sysctl"], files: [{ path: CLI, from: "npm run build" }] });

/** Every file under `directory` with its bytes' hash, size, mode and mtime: what "nothing was written" compares. */
function snapshot(directory: string): Record<string, string> {
  const entries: Record<string, string> = {};
  for (const name of readdirSync(directory).sort()) {
    const path = join(directory, name);
    const info = statSync(path);
    const hash = info.isFile() ? createHash("sha256").update(readFileSync(path)).digest("hex") : "dir";
    entries[name] = `${hash} ${info.size} ${(info.mode & 0o7777).toString(8)} ${info.mtimeMs}`;
  }
  return entries;
}

/**
 * `v6agent run --check` (issue 19) against the real host: a XenServer host (the XAPI simulator,
 * dom0 a namespace with real veth VIFs) with nft rules, first never started, then converged by
 * the real daemon, then broken in the ways --check must report, and with the files of the state
 * directory a careless check would touch: a stale lock (a start takes it over), a temp file of an
 * interrupted save (a start removes it), the journal (a start opens it), a damaged state file (a
 * start moves it aside). After every check, the state directory and the live ruleset are as they
 * were, byte for byte.
 */
describe.skipIf(skip !== undefined)("v6agent run --check", () => {
  let workDir: string;
  let dom0: Netns;
  let sim: RunningXapiSimulator;
  let mgmt: ManagementServer;
  let configPath: string;
  let stateDir: string;
  const processes: DaemonProcess[] = [];
  const hostId = `check-${uniqueSuffix()}`;
  const token = randomBytes(16).toString("hex");

  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), "v6-run-check-"));
    writeFileSync(join(workDir, "xapi-password"), "xenroot\n", { mode: 0o600 });
    dom0 = await Netns.create("v6rc");
    await dom0.exec("ip", ["link", "add", "xenbr0", "type", "bridge"]);
    await dom0.exec("ip", ["link", "set", "xenbr0", "up"]);
    sim = await startXapiSimulator({ asyncDelayMs: 0, dom0: new NetnsDom0({ dom0: dom0.name }) });
    mgmt = new ManagementServer({ tokens: [token], heartbeatIntervalMs: 1_000 });
    const { url } = await mgmt.start();
    stateDir = join(workDir, "state");
    configPath = writeConfig(workDir, {
      hostId,
      management: { servers: [url], token, heartbeatSeconds: 1, timeoutSeconds: 5 },
      hypervisor: { kind: "xenserver", xapi: { url: sim.url, passwordFile: join(workDir, "xapi-password") } },
      firewall: { backend: "nft" },
      netns: dom0.name,
      stateDir,
      statusSocket: join(workDir, "status.sock"),
      logLevel: "info",
    });
  });

  afterAll(async () => {
    for (const child of processes) await child.stop();
    await mgmt?.stop();
    await sim?.close();
    await dom0?.destroy();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  const check = async (): Promise<{ exitCode: number; report: HostCheck; text: string }> => {
    const json = await run(process.execPath, [CLI, "run", "--check", "--json", "--config", configPath], {
      okExitCodes: [0, 1, 4],
      timeoutMs: 60_000,
    });
    const text = await run(process.execPath, [CLI, "run", "--check", "--config", configPath], {
      okExitCodes: [0, 1, 4],
      timeoutMs: 60_000,
    });
    expect(text.exitCode).toBe(json.exitCode);
    return { exitCode: json.exitCode, report: JSON.parse(json.stdout) as HostCheck, text: text.stdout };
  };
  const ruleset = async () => (await dom0.exec("nft", ["list", "ruleset"])).stdout;
  /** Runs --check and asserts it changed nothing: not the state directory, not the rules. */
  const checkWritingNothing = async () => {
    const files = existsSync(stateDir) ? snapshot(stateDir) : undefined;
    const rules = await ruleset();
    const result = await check();
    expect(existsSync(stateDir) ? snapshot(stateDir) : undefined).toEqual(files);
    expect(await ruleset()).toBe(rules);
    expect(existsSync(join(workDir, "status.sock"))).toBe(false);
    return result;
  };

  it("on a host the agent never ran on: the shared rules would be written; no state directory, no rules, no socket appear", async () => {
    const { exitCode, report, text } = await checkWritingNothing();
    expect(exitCode).toBe(4);
    expect(report).toMatchObject({ hostId, state: "missing", inSync: false, problems: [], firewall: { backend: "nft", changed: true } });
    expect(report.changes).toEqual(["firewall: write the agent's shared nft rules"]);
    expect(report.hypervisor.status).toBe("ok");
    expect(existsSync(stateDir)).toBe(false);
    expect(await ruleset()).not.toContain("table bridge v6agent");
    expect(text).toContain("a start would change:\n  firewall: write the agent's shared nft rules\n");
  });

  it("after the daemon converged the host: nothing would change, with the daemon running or not; a port deleted by hand would come back", async () => {
    const daemon = startAgentDaemon(configPath);
    processes.push(daemon);
    await mgmt.waitForAgent(hostId, 30_000);
    const vm = sim.seed.vm({ nameLabel: "guest", domainType: "pvh" });
    await sim.simulator.operations.startVm(vm.ref);
    await mgmt.call(hostId, "network.ensure", { networkId: "net-rc", prefix: "2001:db8:5c:1::/64" });
    const plugged = (await mgmt.call(hostId, "nic.plug", { vmUuid: vm.uuid, networkId: "net-rc", mac: "52:54:00:5c:00:01" })) as {
      device: string;
    };

    // While it runs (writing its journal as it goes): in sync, and it names the daemon; its lock stays its own.
    const lock = readFileSync(join(stateDir, "v6agent.lock"), "utf8");
    const running = await check();
    expect(readFileSync(join(stateDir, "v6agent.lock"), "utf8")).toBe(lock);
    expect(daemon.child.exitCode).toBeNull();
    expect(running.exitCode).toBe(0);
    expect(running.report).toMatchObject({ inSync: true, changes: [], state: "loaded", daemon: { pid: daemon.child.pid } });
    expect(running.text).toContain("nothing would change: the host is as the agent would leave it");
    expect(await daemon.stop()).toBe(0);

    const stopped = await checkWritingNothing();
    expect(stopped.exitCode).toBe(0);
    expect(stopped.report.daemon).toBeUndefined();

    await dom0.exec("nft", ["delete", "element", "bridge", "v6agent", "guest_ports", `{ "${plugged.device}" }`]);
    const broken = await checkWritingNothing();
    expect(broken.exitCode).toBe(4);
    expect([...broken.report.firewall.addedPorts, ...broken.report.firewall.updatedPorts]).toEqual([plugged.device]);
    expect(broken.report.changes.join("\n")).toContain(`port ${plugged.device}`);
    expect(await ruleset()).not.toMatch(new RegExp(`guest_ports[^}]*"${plugged.device.replace(".", "\\.")}"`));
  });

  it("leaves a stale lock, an interrupted save's temp file and the journal as they are", async () => {
    // The pid of a process that is gone: a start would take this lock over.
    const gone = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout;
    writeFileSync(join(stateDir, "v6agent.lock"), `${JSON.stringify({ pid: Number(gone), startTime: "1" })}\n`, { mode: 0o600 });
    writeFileSync(join(stateDir, `.desired-state.json.tmp-${gone}-0badc0de`), "{ half a save");
    expect(existsSync(join(stateDir, "channel-journal.json"))).toBe(true);
    const result = await checkWritingNothing();
    expect(result.exitCode).toBe(4);
    expect(result.report.daemon).toBeUndefined();
  });

  it("with a damaged state file and no good copy: cannot plan (exit 1), and the file stays where it is", async () => {
    truncateSync(join(stateDir, "desired-state.json"), 20);
    rmSync(join(stateDir, "desired-state.json.prev"), { force: true });
    const result = await checkWritingNothing();
    expect(result.exitCode).toBe(1);
    expect(result.report.state).toBe("corrupt");
    expect(result.report.stateProblem).toMatch(/desired-state\.json is corrupt/);
    expect(result.report.problems[0]).toMatch(
      /a start would leave every live rule as it is and refuse changes until the server's state\.sync$/,
    );
    expect(readdirSync(stateDir).filter((name) => name.includes("corrupt"))).toEqual([]);
    expect(result.text).toMatch(/\ncannot plan: state file .*desired-state\.json is corrupt/);
  });

  it("an invalid configuration: every mistake, exit 78, before anything is looked at", async () => {
    const bad = writeConfig(workDir, { hostId, management: { servers: ["wss://192.0.2.1/agent"], token }, logLevel: "loud" }, "bad.yaml");
    const result = await run(process.execPath, [CLI, "run", "--check", "--config", bad], { okExitCodes: [78] });
    expect(result.stderr).toMatch(/^v6agent: 2 problems in .*bad\.yaml:\n {2}management\.caFile: required for wss:\/\/ servers/);
    expect(result.stderr).toContain("\n  logLevel: ");
  });
});

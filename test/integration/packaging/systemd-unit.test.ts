import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT_CONFIG, EXIT_NOT_IMPLEMENTED } from "../../../src/cli/exit.js";
import { run } from "../../../src/exec.js";
import { startXapiSimulator } from "../../../src/lab/xapi-sim/index.js";
import { serviceEnvironment } from "../../support/agent-daemon.js";
import { Netns } from "../../support/netns.js";
import { skipReason } from "../../support/requirements.js";

const CLI = new URL("../../../dist/src/cli.js", import.meta.url).pathname;

/**
 * packaging/v6agent.service checked by systemd's own parser. The binary is not installed here,
 * so ExecStart points at /bin/true in a copy; every other line is verified as written.
 */
describe("packaging/v6agent.service", () => {
  const reason = skipReason({ commands: ["systemd-analyze"] });
  let dir: string;
  let unit: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "v6agent-unit-"));
    unit = await readFile(new URL("../../../packaging/v6agent.service", import.meta.url), "utf8");
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function verify(name: string, text: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, text.replace("ExecStart=/usr/bin/v6agent ", "ExecStart=/bin/true "));
    const { stdout, stderr } = await run("systemd-analyze", ["verify", "--man=no", path]);
    return (stdout + stderr).trim();
  }

  it("runs v6agent run with the standard config, reloads with SIGHUP, stops with SIGTERM", () => {
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/v6agent run --config \/etc\/v6agent\/config.yaml$/m);
    expect(unit).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    expect(unit).toMatch(/^KillSignal=SIGTERM$/m);
    expect(unit).toMatch(/^Restart=on-failure$/m);
    expect(unit).toMatch(new RegExp(`^RestartPreventExitStatus=${EXIT_NOT_IMPLEMENTED} ${EXIT_CONFIG}$`, "m"));
    expect(unit).toMatch(/^CapabilityBoundingSet=.*CAP_NET_ADMIN/m);
  });

  it("sets the memory settings node and glibc read only at start, which the benchmarks run with", () => {
    expect(serviceEnvironment(unit)).toEqual({ NODE_ENV: "production", NODE_OPTIONS: "--v8-pool-size=1", MALLOC_ARENA_MAX: "2" });
  });

  it.skipIf(reason)("systemd-analyze verify accepts every directive", async () => {
    expect(await verify("v6agent.service", unit)).toBe("");
  });

  it.skipIf(reason)("the check reports a misspelt directive (so it can fail)", async () => {
    expect(await verify("misspelt.service", unit.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))).toMatch(
      /Unknown key 'NoNewPrivilege'/,
    );
  });

  it.skipIf(reason)("systemd-analyze security rates the sandbox OK or better", async () => {
    await verify("v6agent.service", unit);
    const path = join(dir, "v6agent.service");
    const { stdout } = await run("systemd-analyze", ["security", "--offline=true", "--no-pager", path], { okExitCodes: [0, 1] });
    const level = /Overall exposure level for v6agent.service: ([\d.]+) (\w+)/.exec(stdout);
    expect(level?.[2]).toMatch(/^(OK|SAFE)$/);
    console.log(`systemd-analyze security exposure: ${level?.[1]} ${level?.[2]}`);
  });
});

/**
 * The exit codes the unit's RestartPreventExitStatus names, from the built daemon itself. That
 * systemd then leaves the unit failed instead of restarting it cannot be shown here: PID 1 on
 * this machine is not systemd.
 */
describe("v6agent run's exit codes a restart cannot cure", () => {
  const reason = skipReason({ root: true, files: [{ path: CLI, from: "npm run build" }] });
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "v6agent-exit-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function runDaemon(config: string): Promise<{ exitCode: number; stderr: string }> {
    const path = join(dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
    await writeFile(path, config);
    const { exitCode, stdout, stderr } = await run(process.execPath, [CLI, "run", "--config", path], {
      okExitCodes: [0, 1, 2, 3, 78],
      timeoutMs: 60_000,
    });
    return { exitCode, stderr: stdout + stderr };
  }

  it.skipIf(reason)(`an invalid configuration: ${EXIT_CONFIG}, naming the field`, async () => {
    const { exitCode, stderr } = await runDaemon("management:\n  servers: [ws://192.0.2.1/v6agent]\n  token: t\n");
    expect(stderr).toMatch(/management\.servers\[0\]: ws:\/\/ to 192\.0\.2\.1 would send commands and tokens in plain text/);
    expect(exitCode).toBe(EXIT_CONFIG);
  });

  it.skipIf(reason)(`a configuration file that is not there: ${EXIT_CONFIG}`, async () => {
    const { exitCode, stderr } = await run(process.execPath, [CLI, "run", "--config", join(dir, "missing.yaml")], { okExitCodes: [78] });
    expect(stderr).toMatch(/cannot read the configuration file/);
    expect(exitCode).toBe(EXIT_CONFIG);
  });

  it.skipIf(reason)(`a XenServer host on Open vSwitch, which it refuses: ${EXIT_NOT_IMPLEMENTED}`, async () => {
    const sim = await startXapiSimulator({ networkBackend: "openvswitch" });
    const netns = await Netns.create("v6ex");
    try {
      await writeFile(join(dir, "xapi-password"), "xenroot\n", { mode: 0o600 });
      const config = [
        "management:",
        "  servers: [ws://127.0.0.1:9/v6agent]",
        "  token: t",
        "hypervisor:",
        "  kind: xenserver",
        "  xapi:",
        `    url: ${sim.url}`,
        `    passwordFile: ${join(dir, "xapi-password")}`,
        "firewall:",
        "  backend: xtables",
        `netns: ${netns.name}`,
        `stateDir: ${join(dir, "state")}`,
        "",
      ].join("\n");
      const { exitCode, stderr } = await runDaemon(config);
      expect(stderr).toMatch(/Open vSwitch/);
      expect(exitCode).toBe(EXIT_NOT_IMPLEMENTED);
    } finally {
      await netns.destroy();
      await sim.close();
    }
  });
});

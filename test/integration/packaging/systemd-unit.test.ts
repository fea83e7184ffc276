import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../../../src/exec.js";
import { serviceEnvironment } from "../../support/agent-daemon.js";
import { skipReason } from "../../support/requirements.js";

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

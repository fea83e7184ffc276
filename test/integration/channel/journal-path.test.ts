import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NetnsDom0, type RunningXapiSimulator, startXapiSimulator } from "../../../src/lab/xapi-sim/index.js";
import { CLI, startAgentDaemon, writeConfig } from "../../support/agent-daemon.js";
import { Netns } from "../../support/netns.js";
import { skipReason } from "../../support/requirements.js";

/**
 * Issue 17, finding 6: a journal path that is a directory left a daemon that never connected and
 * never exited, so systemd's Restart=on-failure never fired (its hypervisor and firewall, already
 * started, kept the process alive). The daemon opens its journal before it touches the host and
 * exits non-zero naming the path. Run against a working hypervisor (the XAPI simulator with a
 * dom0 namespace), where the old daemon hung.
 */
const missing = existsSync(CLI) ? undefined : "needs `npm run build` (dist/src/cli.js)";
if (missing && process.env.CI) throw new Error(`CI must run every test, but this one ${missing}`);
const skip = missing ?? skipReason({ root: true, commands: ["ip", "nft"] });

describe.skipIf(skip !== undefined)("v6agent run with an unusable journal path", () => {
  let dir: string;
  let dom0: Netns | undefined;
  let sim: RunningXapiSimulator | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "v6agent-journal-"));
    writeFileSync(join(dir, "xapi-password"), "xenroot\n", { mode: 0o600 });
    dom0 = await Netns.create("v6jp");
    sim = await startXapiSimulator({ asyncDelayMs: 0, dom0: new NetnsDom0({ dom0: dom0.name }) });
  });
  afterAll(async () => {
    await sim?.close();
    await dom0?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("exits non-zero with the path and the reason, before it touches the host", async () => {
    const stateDir = join(dir, "state");
    mkdirSync(join(stateDir, "channel-journal.json"), { recursive: true });
    const config = writeConfig(dir, {
      hostId: "journal-test",
      management: { servers: ["ws://127.0.0.1:1/v6agent"], token: "t" },
      hypervisor: { kind: "xenserver", xapi: { url: sim?.url, passwordFile: join(dir, "xapi-password") } },
      firewall: { backend: "nft" },
      netns: dom0?.name,
      stateDir,
      logLevel: "info",
    });
    const daemon = startAgentDaemon(config);
    try {
      // The old daemon printed the error and kept running; the new one must end by itself.
      expect(await daemon.exited).toBe(1);
    } finally {
      await daemon.stop(1000);
    }
    expect(daemon.output()).toContain(`command journal ${join(stateDir, "channel-journal.json")} is unusable: EISDIR`);
  });
});

import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CLI, startAgentDaemon, writeConfig } from "../../support/agent-daemon.js";

/**
 * Issue 17, finding 6: a journal path that is a directory left a daemon that never connected and
 * never exited, so systemd's Restart=on-failure never fired. The daemon opens its journal before
 * it touches the host and exits non-zero naming the path.
 */
const missing = existsSync(CLI) ? undefined : "needs `npm run build` (dist/src/cli.js)";
if (missing && process.env.CI) throw new Error(`CI must run every test, but this one ${missing}`);

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(missing)("v6agent run with an unusable journal path", () => {
  it("exits non-zero with the path and the reason, before it touches the host", async () => {
    const dir = mkdtempSync(join(tmpdir(), "v6agent-journal-"));
    dirs.push(dir);
    const stateDir = join(dir, "state");
    mkdirSync(join(stateDir, "channel-journal.json"), { recursive: true });
    const config = writeConfig(dir, {
      hostId: "journal-test",
      management: { servers: ["ws://127.0.0.1:1/v6agent"], token: "t" },
      // Never reached: no libvirt is needed for this test.
      hypervisor: { kind: "kvm", uri: "test:///nowhere" },
      firewall: { backend: "nft" },
      stateDir,
      logLevel: "info",
    });
    const daemon = startAgentDaemon(config);
    const code = await daemon.exited;
    expect(code).toBe(1);
    expect(daemon.output()).toContain(`command journal ${join(stateDir, "channel-journal.json")} is unusable: EISDIR`);
  });
});

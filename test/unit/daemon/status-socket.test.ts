import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { queryStatus, serveStatus } from "../../../src/daemon/status-socket.js";
import { createLogger } from "../../../src/log.js";

const logger = createLogger("silent");

describe("the status socket", () => {
  const dir = mkdtempSync(join(tmpdir(), "v6agent-status-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("answers each connection with one JSON document, root only (0600 in a 0700 directory it makes), and is gone after close", async () => {
    const path = join(dir, "run", "status.sock");
    let asked = 0;
    const server = await serveStatus(path, async () => ({ asked: ++asked }), logger);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "run")).mode & 0o777).toBe(0o700);
    expect(await queryStatus(path)).toEqual({ asked: 1 });
    expect(await queryStatus(path)).toEqual({ asked: 2 });
    await server.close();
    expect(existsSync(path)).toBe(false);
    await expect(queryStatus(path)).rejects.toMatchObject({ code: "unavailable", message: expect.stringMatching(/no status socket at/) });
  });

  it("a report that fails is an error document, not a hang", async () => {
    const path = join(dir, "failing.sock");
    const server = await serveStatus(path, async () => Promise.reject(new Error("firewall gone")), logger);
    expect(await queryStatus(path)).toEqual({ error: { code: "internal", message: "firewall gone" } });
    await server.close();
  });

  it("takes over a socket a killed daemon left, refuses a live one and anything that is not a socket", async () => {
    const stale = join(dir, "stale.sock");
    const holder = spawn(process.execPath, [
      "-e",
      `require("net").createServer().listen(${JSON.stringify(stale)}, () => console.log("up"))`,
    ]);
    await new Promise((resolve) => holder.stdout.once("data", resolve));
    // Alive: a second daemon must not steal its socket.
    await expect(serveStatus(stale, async () => ({}), logger)).rejects.toThrow(/another v6agent serves its status on .*stale\.sock/);
    holder.kill("SIGKILL");
    await new Promise((resolve) => holder.once("exit", resolve));
    expect(existsSync(stale)).toBe(true);
    const server = await serveStatus(stale, async () => ({ mine: true }), logger);
    expect(await queryStatus(stale)).toEqual({ mine: true });
    await server.close();

    const file = join(dir, "a-file");
    writeFileSync(file, "precious");
    await expect(serveStatus(file, async () => ({}), logger)).rejects.toThrow(/exists and is not a socket; not replacing it/);
    expect(existsSync(file)).toBe(true);
  });
});

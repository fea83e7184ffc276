import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ManagementServer } from "../../../src/mgmt/index.js";
import { RPC_ERRORS } from "../../../src/protocol/index.js";
import { eventually, vmUuid } from "../../support/channel-harness.js";
import { TcpProxy } from "../../support/tcp-proxy.js";

// The agent runs as a separate, compiled process so a restart is a real SIGKILL, not a simulation.
const AGENT = new URL("../../../dist/test/support/agent-process.js", import.meta.url).pathname;
const missing = existsSync(AGENT) ? undefined : "needs `npm run build` (dist/test/support/agent-process.js)";
if (missing && process.env.CI) throw new Error(`CI must run every test, but this one ${missing}`);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function workspace() {
  const dir = mkdtempSync(join(tmpdir(), "v6agent-restart-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return {
    outboxPath: join(dir, "outbox.jsonl"),
    executionsPath: join(dir, "executions"),
    releasePath: join(dir, "release"),
    executions: (id: string) =>
      existsSync(join(dir, "executions"))
        ? readFileSync(join(dir, "executions"), "utf8")
            .split("\n")
            .filter((line) => line === id).length
        : 0,
  };
}

function startAgent(url: string, files: ReturnType<typeof workspace>): ChildProcess {
  const child = spawn(process.execPath, [AGENT, JSON.stringify({ url, ...files })], { stdio: ["ignore", "pipe", "inherit"] });
  cleanups.push(() => {
    child.kill("SIGKILL");
  });
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

describe.skipIf(missing)("agent restarts (a real process killed with SIGKILL)", () => {
  it("restarted during a command: the command gets exactly one answer, interrupted, and is never run again", async () => {
    const server = new ManagementServer({ unauthenticatedLoopback: true, pingIntervalMs: 100, silenceTimeoutMs: 600 });
    const { url } = await server.start();
    cleanups.push(() => server.stop());
    const files = workspace();
    const first = startAgent(url, files);
    await server.waitForAgent("restart-host", 10_000);
    const call = server.call("restart-host", "vm.stop", { uuid: vmUuid(1) }, { id: "r-1" });
    const outcome = call.catch((error: { rpc?: { code: number } }) => error);
    await eventually(() => files.executions("r-1") === 1, "the command started in the first agent");
    await kill(first);
    writeFileSync(files.releasePath, "");
    startAgent(url, files);
    expect(await outcome).toMatchObject({ rpc: { code: RPC_ERRORS.interrupted, data: { reason: "interrupted" } } });
    await expect(server.call("restart-host", "vm.stop", { uuid: vmUuid(1) }, { id: "r-1" })).rejects.toMatchObject({
      rpc: { code: RPC_ERRORS.interrupted },
    });
    expect(files.executions("r-1")).toBe(1);
    // The new process runs new ids normally.
    await expect(server.call("restart-host", "vm.stop", { uuid: vmUuid(1) }, { id: "r-2" })).resolves.toEqual({
      uuid: vmUuid(1),
      state: "stopped",
    });
  });

  it("restarted with a result in its outbox: the result is delivered by the new process, the command ran once", async () => {
    const server = new ManagementServer({ unauthenticatedLoopback: true, pingIntervalMs: 100, silenceTimeoutMs: 600 });
    const { port } = await server.start();
    cleanups.push(() => server.stop());
    const proxy = new TcpProxy(port);
    await proxy.start();
    cleanups.push(() => proxy.stop());
    const files = workspace();
    const first = startAgent(`ws://127.0.0.1:${proxy.port}/v6agent`, files);
    await server.waitForAgent("restart-host", 10_000);
    const call = server.call("restart-host", "vm.stop", { uuid: vmUuid(2) }, { id: "o-1" });
    await eventually(() => files.executions("o-1") === 1, "the command started");
    // Cut the agent off (connection cut, reconnects refused), let the command finish, then kill it.
    const dead = new TcpProxy(1);
    await dead.start();
    await dead.stop();
    proxy.retarget(dead.port);
    proxy.cut();
    writeFileSync(files.releasePath, "");
    await eventually(() => readFileSync(files.outboxPath, "utf8").includes('"t":"done","id":"o-1"'), "the result is journalled");
    await kill(first);
    expect(readFileSync(files.outboxPath, "utf8")).not.toContain('"t":"sent","id":"o-1"');
    proxy.retarget(port);
    startAgent(`ws://127.0.0.1:${proxy.port}/v6agent`, files);
    await expect(call).resolves.toEqual({ uuid: vmUuid(2), state: "stopped" });
    expect(files.executions("o-1")).toBe(1);
  });
});

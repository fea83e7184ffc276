import { afterEach, describe, expect, it } from "vitest";
import { ManagementServer } from "../../../src/mgmt/index.js";
import { eventually, makeAgent, nextConnected, RecordingHandler, vmUuid } from "../../support/channel-harness.js";
import { TcpProxy } from "../../support/tcp-proxy.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startServer(port = 0, silenceTimeoutMs = 600): Promise<{ server: ManagementServer; port: number }> {
  const server = new ManagementServer({
    unauthenticatedLoopback: true,
    port,
    heartbeatIntervalMs: 200,
    pingIntervalMs: 100,
    silenceTimeoutMs,
  });
  const started = await server.start();
  cleanups.push(() => server.stop());
  return { server, port: started.port };
}

function startAgent(url: string, handler: RecordingHandler) {
  const { channel } = makeAgent({ servers: [url] }, handler);
  cleanups.push(() => channel.stop());
  const connected = nextConnected(channel);
  channel.start();
  return { channel, connected };
}

describe("fault injection: every command gets exactly one result, none runs twice", () => {
  it("server killed and restarted mid-command: the result reaches the new server, the replayed id is not re-run", async () => {
    const first = await startServer();
    const handler = new RecordingHandler();
    const { channel, connected } = startAgent(`ws://127.0.0.1:${first.port}/v6agent`, handler);
    await connected;
    handler.hold(vmUuid(1));
    const lost = first.server.call("host-1", "vm.stop", { uuid: vmUuid(1) }, { id: "restart-1" });
    await eventually(() => handler.count("restart-1") === 1, "the command started");
    await first.server.stop();
    await expect(lost).rejects.toThrow(/stopped/);
    // The command finishes while no server is there: its result waits in the outbox.
    handler.release(vmUuid(1));
    await eventually(() => channel.outboxSize === 1, "the result is in the outbox");

    const second = await startServer(first.port);
    const late: unknown[] = [];
    second.server.on("unmatched", (info) => late.push(info.frame));
    await second.server.waitForAgent("host-1");
    await eventually(() => late.length === 1, "the outbox was delivered on reconnect");
    expect(late[0]).toEqual({ kind: "result", id: "restart-1", result: { uuid: vmUuid(1), state: "stopped" } });
    // Confirmed by the answer to the agent's next request, then it leaves the outbox.
    await eventually(() => channel.outboxSize === 0, "the delivery was confirmed");
    // The new server does not know the outcome, so it replays the id: answered, not re-executed.
    await expect(second.server.call("host-1", "vm.stop", { uuid: vmUuid(1) }, { id: "restart-1" })).resolves.toEqual({
      uuid: vmUuid(1),
      state: "stopped",
    });
    expect(handler.count("restart-1")).toBe(1);
  });

  it("TCP cut without a close frame mid-command: the server's pending call resolves once after the reconnect", async () => {
    const { server, port } = await startServer();
    const proxy = new TcpProxy(port);
    await proxy.start();
    cleanups.push(() => proxy.stop());
    const handler = new RecordingHandler();
    const { channel, connected } = startAgent(`ws://127.0.0.1:${proxy.port}/v6agent`, handler);
    await connected;
    handler.hold(vmUuid(2));
    const call = server.call("host-1", "vm.stop", { uuid: vmUuid(2) }, { id: "cut-1" });
    await eventually(() => handler.count("cut-1") === 1, "the command started");
    const reconnected = nextConnected(channel);
    proxy.cut();
    await reconnected;
    handler.release(vmUuid(2));
    await expect(call).resolves.toEqual({ uuid: vmUuid(2), state: "stopped" });
    // The server re-sent the pending id on hello; the agent recognised it as already running.
    expect(handler.count("cut-1")).toBe(1);
  });

  it("a peer that stops reading: the agent drops it after the silence timeout and the lost result is recovered", {
    timeout: 20_000,
  }, async () => {
    // The server is patient here, so only the agent's own liveness check can end the connection.
    const { server, port } = await startServer(0, 60_000);
    const proxy = new TcpProxy(port);
    await proxy.start();
    cleanups.push(() => proxy.stop());
    const handler = new RecordingHandler();
    const { channel, connected } = startAgent(`ws://127.0.0.1:${proxy.port}/v6agent`, handler);
    await connected;
    handler.hold(vmUuid(3));
    const call = server.call("host-1", "vm.stop", { uuid: vmUuid(3) }, { id: "stall-1" });
    await eventually(() => handler.count("stall-1") === 1, "the command started");
    const disconnected = new Promise<{ reason: string }>((resolve) => channel.once("disconnected", resolve));
    proxy.stall();
    // The result is written into the stalled connection and never arrives.
    handler.release(vmUuid(3));
    await eventually(() => handler.events.includes(`end vm.stop ${vmUuid(3)}`), "the command finished");
    const reconnected = nextConnected(channel);
    expect((await disconnected).reason).toMatch(/peer silent for more than 600 ms/);
    proxy.resume();
    await reconnected;
    await expect(call).resolves.toEqual({ uuid: vmUuid(3), state: "stopped" });
    expect(handler.count("stall-1")).toBe(1);
  });

  it("an agent that stops reading is dropped by the server, which re-sends the call when it returns", async () => {
    const { server, port } = await startServer();
    const proxy = new TcpProxy(port);
    await proxy.start();
    cleanups.push(() => proxy.stop());
    const handler = new RecordingHandler();
    const { channel, connected } = startAgent(`ws://127.0.0.1:${proxy.port}/v6agent`, handler);
    await connected;
    const serverSide = new Promise((resolve) => server.once("disconnected", resolve));
    proxy.stall();
    const call = server.call("host-1", "nic.unplug", { vmUuid: vmUuid(4), mac: "52:54:00:00:00:04" }, { id: "stall-2" });
    await serverSide;
    expect(server.agent("host-1")?.connected).toBe(false);
    const reconnected = nextConnected(channel);
    proxy.resume();
    await reconnected;
    await expect(call).resolves.toEqual({ vmUuid: vmUuid(4), mac: "52:54:00:00:00:04", unplugged: true });
    expect(handler.count("stall-2")).toBe(1);
  });

  it("tries the next server in the list when the first is down", async () => {
    const dead = new TcpProxy(1);
    await dead.start();
    await dead.stop();
    const { server, port } = await startServer();
    const handler = new RecordingHandler();
    const { channel } = makeAgent({ servers: [`ws://127.0.0.1:${dead.port}/v6agent`, `ws://127.0.0.1:${port}/v6agent`] }, handler);
    cleanups.push(() => channel.stop());
    const failures: string[] = [];
    channel.on("disconnected", (info) => failures.push(info.server));
    const connected = nextConnected(channel);
    channel.start();
    expect((await connected).server).toBe(`ws://127.0.0.1:${port}/v6agent`);
    expect(failures[0]).toBe(`ws://127.0.0.1:${dead.port}/v6agent`);
    await expect(server.call("host-1", "vm.list", {})).resolves.toEqual({ vms: [] });
  });
});

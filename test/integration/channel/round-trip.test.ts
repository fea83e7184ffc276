import { afterEach, describe, expect, it } from "vitest";
import { ManagementServer } from "../../../src/mgmt/index.js";
import { RemoteError, RPC_ERRORS } from "../../../src/protocol/index.js";
import { eventually, makeAgent, nextConnected, RecordingHandler, vmUuid } from "../../support/channel-harness.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(agentOptions: Parameters<typeof makeAgent>[0] extends infer O ? Partial<O> : never = {}, serverHeartbeatMs = 200) {
  const server = new ManagementServer({ unauthenticatedLoopback: true, heartbeatIntervalMs: serverHeartbeatMs });
  const { url } = await server.start();
  cleanups.push(() => server.stop());
  const handler = new RecordingHandler();
  const { channel } = makeAgent({ servers: [url], ...agentOptions }, handler);
  cleanups.push(() => channel.stop());
  const connected = nextConnected(channel);
  channel.start();
  await connected;
  return { server, channel, handler, url };
}

describe("agent channel ↔ reference server", () => {
  it("registers with agent.hello, runs a command and heartbeats", async () => {
    const { server, handler } = await setup();
    expect(server.agents().map((agent) => [agent.hostId, agent.connected, agent.hypervisor])).toEqual([["host-1", true, "kvm"]]);
    const result = await server.call("host-1", "vm.stop", { uuid: vmUuid(1) }, { id: "c1" });
    expect(result).toEqual({ uuid: vmUuid(1), state: "stopped" });
    expect(handler.count("c1")).toBe(1);
    await server.reports.wait({ method: "agent.heartbeat" }, 5000);
    expect(server.reports.query({ method: "agent.heartbeat" }).length).toBeGreaterThan(0);
    expect(server.reports.query({ method: "agent.hello" })[0]?.hostId).toBe("host-1");
  });

  it("heartbeats at its own configured interval when the server asks for a longer one", async () => {
    const { server } = await setup({ heartbeatIntervalMs: 100 }, 600_000);
    await eventually(() => server.reports.query({ method: "agent.heartbeat" }).length >= 3, "three heartbeats at 100 ms");
  });

  it("answers a repeated id from the journal without running it again", async () => {
    const { server, handler } = await setup();
    const first = await server.call("host-1", "vm.stop", { uuid: vmUuid(2) }, { id: 42 });
    const again = await server.call("host-1", "vm.stop", { uuid: vmUuid(2) }, { id: 42 });
    expect(again).toEqual(first);
    expect(handler.count(42)).toBe(1);
  });

  it("never runs two commands for the same VM at once, but runs different VMs side by side", async () => {
    const { server, handler } = await setup();
    handler.hold(vmUuid(3));
    const a = server.call("host-1", "vm.stop", { uuid: vmUuid(3) }, { id: "a" });
    const b = server.call("host-1", "vm.stop", { uuid: vmUuid(3), force: true }, { id: "b" });
    const other = await server.call("host-1", "vm.stop", { uuid: vmUuid(4) }, { id: "other" });
    expect(other.uuid).toBe(vmUuid(4));
    // a holds VM 3; b waits behind it even though VM 4's command started and finished meanwhile.
    expect(handler.events.filter((event) => event.includes(vmUuid(3)))).toEqual([`start vm.stop ${vmUuid(3)}`]);
    handler.release(vmUuid(3));
    await Promise.all([a, b]);
    expect(handler.events.filter((event) => event.includes(vmUuid(3)))).toEqual([
      `start vm.stop ${vmUuid(3)}`,
      `end vm.stop ${vmUuid(3)}`,
      `start vm.stop ${vmUuid(3)}`,
      `end vm.stop ${vmUuid(3)}`,
    ]);
  });

  it("answers a flood beyond the queue with busy and keeps the connection", async () => {
    const { server, channel, handler } = await setup({ limits: { maxConcurrentCommands: 2, maxQueuedCommands: 3 } });
    let disconnects = 0;
    channel.on("disconnected", () => disconnects++);
    for (let n = 10; n < 20; n++) handler.hold(vmUuid(n));
    const calls = Array.from({ length: 10 }, (_, i) =>
      server.call("host-1", "vm.stop", { uuid: vmUuid(10 + i) }, { id: `f${i}` }).then(
        (result) => ({ ok: true as const, result }),
        (error: RemoteError) => ({ ok: false as const, error }),
      ),
    );
    await eventually(() => handler.executions.size === 2, "two commands running");
    for (let n = 10; n < 20; n++) handler.release(vmUuid(n));
    const outcomes = await Promise.all(calls);
    const busy = outcomes.filter((outcome) => !outcome.ok);
    expect(outcomes.filter((outcome) => outcome.ok)).toHaveLength(5);
    expect(busy).toHaveLength(5);
    for (const outcome of busy) {
      expect(outcome.ok === false && outcome.error).toBeInstanceOf(RemoteError);
      expect(outcome.ok === false && outcome.error.rpc.code).toBe(RPC_ERRORS.busy);
    }
    // A busy id was not journalled: retrying it later runs it.
    const retried = busy[0]?.ok === false ? outcomes.indexOf(busy[0]) : -1;
    await server.call("host-1", "vm.stop", { uuid: vmUuid(10 + retried) }, { id: `f${retried}` });
    expect(handler.count(`f${retried}`)).toBe(1);
    expect(disconnects).toBe(0);
  });

  it("answers a command that exceeds its timeout with -32004 and keeps the VM locked until the handler stops", async () => {
    const { server, handler } = await setup({ limits: { commandTimeoutMs: 150 } });
    handler.hold(vmUuid(5));
    const slow = server.call("host-1", "vm.stop", { uuid: vmUuid(5) }, { id: "slow" });
    await expect(slow).rejects.toMatchObject({ rpc: { code: RPC_ERRORS.timeout, data: { reason: "timeout" } } });
    const next = server.call("host-1", "vm.stop", { uuid: vmUuid(5) }, { id: "next" });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(handler.count("next")).toBe(0);
    handler.release(vmUuid(5));
    await expect(next).resolves.toMatchObject({ state: "stopped" });
    // The replay of the timed-out id gets the same timeout answer, not a second run.
    await expect(server.call("host-1", "vm.stop", { uuid: vmUuid(5) }, { id: "slow" })).rejects.toMatchObject({
      rpc: { code: RPC_ERRORS.timeout },
    });
    expect(handler.count("slow")).toBe(1);
  });

  it("delivers vif.report and queues reports made while disconnected", async () => {
    const { server, channel } = await setup();
    const report = {
      vmUuid: vmUuid(6),
      networkId: "net-1",
      mac: "52:54:00:12:34:56",
      duidLL: "00:03:00:01:52:54:00:12:34:56",
      linkLocal: "fe80::5054:ff:fe12:3456",
      device: "vnet6",
      bridge: "v6br-1",
      state: "protected" as const,
    };
    await channel.report(report);
    expect(server.reports.query({ method: "vif.report" }).map((entry) => entry.params)).toEqual([report]);
    const dropped = new Promise((resolve) => channel.once("disconnected", resolve));
    server.dropAgent("host-1");
    await dropped;
    expect(channel.connected).toBe(false);
    const queued = channel.report({ ...report, state: "unplugged" });
    await queued;
    expect(server.reports.query({ method: "vif.report" }).map((entry) => (entry.params as { state: string }).state)).toEqual([
      "protected",
      "unplugged",
    ]);
  });

  it("refuses an invalid report from the agent core before sending it", async () => {
    const { channel } = await setup();
    expect(() =>
      channel.report({
        vmUuid: vmUuid(7),
        mac: "01:00:5e:00:00:01",
        duidLL: "00:03:00:01:01:00:5e:00:00:01",
        linkLocal: "fe80::1",
        state: "protected",
      }),
    ).toThrow(/params.mac: .*multicast/);
  });

  it("stop() lets a running command finish and delivers its result before closing", async () => {
    const { server, channel, handler } = await setup();
    handler.hold(vmUuid(8));
    const call = server.call("host-1", "vm.stop", { uuid: vmUuid(8) }, { id: "last" });
    await eventually(() => handler.count("last") === 1, "the command started");
    const stopped = channel.stop();
    // New commands are refused while stopping, with a retryable error.
    await expect(server.call("host-1", "vm.list", {})).rejects.toMatchObject({ rpc: { code: RPC_ERRORS.unavailable } });
    handler.release(vmUuid(8));
    await expect(call).resolves.toEqual({ uuid: vmUuid(8), state: "stopped" });
    await stopped;
    expect(channel.state).toBe("stopped");
  });

  it("stop() gives up on a handler that outlives the grace period and aborts it", async () => {
    const { channel, server, handler } = await setup();
    let aborted: unknown;
    handler.hold(vmUuid(9));
    void server.call("host-1", "vm.stop", { uuid: vmUuid(9) }, { id: "stuck", timeoutMs: 2000 }).catch(() => undefined);
    await eventually(() => handler.count("stuck") === 1, "the command started");
    const signal = handler.lastSignal as AbortSignal;
    signal.addEventListener("abort", () => {
      aborted = signal.reason;
    });
    await channel.stop({ graceMs: 100 });
    expect(channel.state).toBe("stopped");
    expect(String(aborted)).toMatch(/stopping/);
    handler.release(vmUuid(9));
  });
});

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { AgentChannel } from "../../../src/channel/index.js";
import { ManagementServer } from "../../../src/mgmt/index.js";
import { RPC_ERRORS } from "../../../src/protocol/index.js";
import { eventually, makeAgent, nextConnected, RawServer, RecordingHandler, vmUuid } from "../../support/channel-harness.js";

/**
 * The channel's client in-process, against the reference server or a bare one, on loopback: no
 * root, seconds. The process-level and fault tests are in test/integration/channel/.
 */
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function journalPath(): string {
  const dir = mkdtempSync(join(tmpdir(), "v6agent-channel-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "channel-journal.json");
}

async function reference(options: ConstructorParameters<typeof ManagementServer>[0] = {}) {
  const server = new ManagementServer({ unauthenticatedLoopback: true, heartbeatIntervalMs: 200, ...options });
  const { url } = await server.start();
  cleanups.push(() => server.stop());
  return { server, url };
}

async function connect(url: string, options: Partial<Parameters<typeof makeAgent>[0]> = {}, handler = new RecordingHandler()) {
  const { channel } = makeAgent({ servers: [url], ...options }, handler);
  cleanups.push(() => channel.stop({ graceMs: 1000 }));
  const connected = nextConnected(channel);
  channel.start();
  await connected;
  return { channel, handler };
}

async function stopped(channel: AgentChannel): Promise<void> {
  await channel.stop({ graceMs: 1000 });
}

describe("AgentChannel against the reference server", () => {
  it("says hello, runs a command once, heartbeats, and answers a repeated id from its journal", async () => {
    const { server, url } = await reference();
    const { handler } = await connect(url);
    expect(server.agent("host-1")).toMatchObject({ connected: true, hypervisor: "kvm", credential: "none" });
    const first = await server.call("host-1", "vm.stop", { uuid: vmUuid(1) }, { id: "c1" });
    expect(first).toEqual({ uuid: vmUuid(1), state: "stopped" });
    await expect(server.call("host-1", "vm.stop", { uuid: vmUuid(1) }, { id: "c1" })).resolves.toEqual(first);
    expect(handler.count("c1")).toBe(1);
    await server.reports.wait({ method: "agent.heartbeat" }, 5000);
    expect(server.reports.query({ method: "agent.heartbeat" }).length).toBeGreaterThan(0);
  });

  // Issue 17, finding 7: an id re-used with a different method or params got the first result.
  it("refuses an id re-sent with different params or another method, and runs neither", async () => {
    const { server, url } = await reference();
    const { handler } = await connect(url);
    await server.call("host-1", "vm.stop", { uuid: vmUuid(2) }, { id: "r1" });
    await expect(server.call("host-1", "vm.stop", { uuid: vmUuid(3) }, { id: "r1" })).rejects.toMatchObject({
      rpc: { code: RPC_ERRORS.conflict, data: { field: "id", reason: "conflict" } },
    });
    await expect(server.call("host-1", "vm.list", {}, { id: "r1" })).rejects.toMatchObject({
      rpc: { code: RPC_ERRORS.conflict, data: { field: "id" }, message: expect.stringMatching(/first used for vm.stop/) },
    });
    expect(handler.count("r1")).toBe(1);
    expect(handler.events.filter((event) => event.includes(vmUuid(3)))).toEqual([]);
  });

  it("takes a replay with the same request in another spelling as the same request", async () => {
    const { server, url } = await reference();
    const { handler } = await connect(url);
    const params = { vmUuid: vmUuid(4), mac: "52:54:00:aa:bb:cc" };
    const first = await server.call("host-1", "nic.unplug", params, { id: "s1" });
    // Upper-case MAC, members in another order: canonicalised, it is the same request.
    const again = await server.call("host-1", "nic.unplug", { mac: "52:54:00:AA:BB:CC", vmUuid: vmUuid(4) }, { id: "s1", validate: false });
    expect(again).toEqual(first);
    expect(handler.count("s1")).toBe(1);
  });

  it("delivers a result that finished while disconnected after the next hello", async () => {
    const { server, url } = await reference({ pingIntervalMs: 100, silenceTimeoutMs: 2000 });
    const { channel, handler } = await connect(url);
    handler.hold(vmUuid(5));
    const call = server.call("host-1", "vm.stop", { uuid: vmUuid(5) }, { id: "o1" });
    await eventually(() => handler.count("o1") === 1, "the command started");
    const back = nextConnected(channel);
    server.dropAgent("host-1");
    handler.release(vmUuid(5));
    await expect(call).resolves.toEqual({ uuid: vmUuid(5), state: "stopped" });
    await back;
    expect(handler.count("o1")).toBe(1);
    await eventually(() => channel.outboxSize === 0, "the delivery confirmed");
  });
});

describe("AgentChannel with a damaged journal (issue 17, finding 6)", () => {
  /** A journal holding one finished, delivered command "j-1", then damaged by `damage`. */
  async function damagedJournal(damage: (text: string) => string): Promise<string> {
    const path = journalPath();
    const { server, url } = await reference();
    const { channel, handler } = await connect(url, { outboxPath: path });
    await server.call("host-1", "vm.stop", { uuid: vmUuid(6) }, { id: "j-1" });
    await eventually(() => readFileSync(path, "utf8").includes('"t":"sent","id":"j-1"'), "j-1 confirmed");
    expect(handler.count("j-1")).toBe(1);
    await stopped(channel);
    await server.stop();
    writeFileSync(path, damage(readFileSync(path, "utf8")));
    return path;
  }

  // What j-1 is answered with: -32011, or its journalled result where the damage left that.
  it.each([
    ["garbage instead of the file", () => "\u0000\u0017garbage\n", "error"],
    ["its start record overwritten", (text: string) => text.replace(/\{"t":"start","id":"j-1"[^\n]*/, "#####"), "result"],
    ["cut short in the middle", (text: string) => text.slice(0, text.indexOf('"t":"start","id":"j-1"') + 8), "error"],
    ["emptied", () => "", "error"],
  ])("with %s, it never runs a re-sent id again, and refuses new ids until a server acknowledges", async (_name, damage, first) => {
    const path = await damagedJournal(damage);
    const raw = new RawServer();
    cleanups.push(() => raw.close());
    await raw.ready();
    const handler = new RecordingHandler();
    await connect(raw.url, { outboxPath: path }, handler);
    raw.send({ jsonrpc: "2.0", id: "j-1", method: "vm.stop", params: { uuid: vmUuid(6) } });
    raw.send({ jsonrpc: "2.0", id: "j-2", method: "vm.stop", params: { uuid: vmUuid(7) } });
    await eventually(() => raw.answers("j-1").length === 1 && raw.answers("j-2").length === 1, "both answered");
    // The re-sent id must not run again, and neither may a new one the journal cannot prove new.
    expect([handler.count("j-1"), handler.count("j-2")]).toEqual([0, 0]);
    const refused = { error: { code: RPC_ERRORS.journalDamaged, data: { reason: "journal_damaged" } } };
    expect(raw.answers("j-1")[0]).toMatchObject(first === "error" ? refused : { result: { uuid: vmUuid(6), state: "stopped" } });
    expect(raw.answers("j-2")[0]).toMatchObject(refused);
    expect(raw.hellos[0]).toMatchObject({ journalDamaged: true });
  });

  it("runs new ids again once the reference server acknowledged; the calls it had pending fail with -32011", async () => {
    const path = await damagedJournal((text) => text.replace(/\{"t":"start","id":"j-1"[^\n]*/, "#####"));
    const { server, url } = await reference();
    // A call the server sent before it knew: it is failed at the hello, never re-sent.
    const pending = server.call("host-1", "vm.stop", { uuid: vmUuid(6) }, { id: "j-1" }).catch((error: unknown) => error);
    const handler = new RecordingHandler();
    const { channel } = await connect(url, { outboxPath: path }, handler);
    expect(await pending).toMatchObject({ rpc: { code: RPC_ERRORS.journalDamaged } });
    await expect(server.call("host-1", "vm.stop", { uuid: vmUuid(8) }, { id: "j-3" })).resolves.toEqual({
      uuid: vmUuid(8),
      state: "stopped",
    });
    expect(handler.count("j-1")).toBe(0);
    expect(handler.count("j-3")).toBe(1);
    // The acknowledgement is journalled: the next start is not damaged.
    await stopped(channel);
    const raw = new RawServer();
    cleanups.push(() => raw.close());
    await raw.ready();
    await connect(raw.url, { outboxPath: path });
    expect(raw.hellos[0]?.journalDamaged).toBeUndefined();
  });

  it("names an unusable journal path when it is constructed", () => {
    const dir = mkdtempSync(join(tmpdir(), "v6agent-channel-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    expect(() => makeAgent({ servers: ["ws://127.0.0.1:1/"], outboxPath: dir })).toThrow(
      new RegExp(`command journal ${dir} is unusable: EISDIR`),
    );
  });
});

import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { ManagementServer } from "../../../src/mgmt/index.js";
import { RPC_ERRORS, SUBPROTOCOL } from "../../../src/protocol/index.js";
import { eventually, makeAgent, nextConnected, RecordingHandler, vmUuid } from "../../support/channel-harness.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const MAX = 64 * 1024;

async function connectedAgent() {
  const server = new ManagementServer({ unauthenticatedLoopback: true, maxMessageBytes: MAX });
  const { url } = await server.start();
  cleanups.push(() => server.stop());
  const handler = new RecordingHandler();
  const { channel } = makeAgent({ servers: [url], limits: { maxMessageBytes: MAX } }, handler);
  cleanups.push(() => channel.stop());
  const connected = nextConnected(channel);
  channel.start();
  await connected;
  const answers: { kind: string; id: unknown; error?: { code: number; message: string; data?: { field?: string } } }[] = [];
  server.on("unmatched", (info) => answers.push(info.frame as (typeof answers)[number]));
  let disconnects = 0;
  channel.on("disconnected", () => disconnects++);
  return { server, channel, handler, url, answers, disconnects: () => disconnects };
}

const VALID_ENSURE = { networkId: "n1", prefix: "2001:db8:1:1::/64" };

describe("malformed input to the agent: documented error, field named, connection kept", () => {
  it.each([
    ["invalid JSON", '{"jsonrpc":"2.0",', RPC_ERRORS.parseError, "message", null],
    ["a batch", "[]", RPC_ERRORS.invalidRequest, "message", null],
    ["a missing jsonrpc member", JSON.stringify({ id: "m1", method: "vm.list", params: {} }), RPC_ERRORS.invalidRequest, "jsonrpc", "m1"],
    [
      "positional params",
      JSON.stringify({ jsonrpc: "2.0", id: "m2", method: "vm.list", params: [] }),
      RPC_ERRORS.invalidRequest,
      "params",
      "m2",
    ],
    [
      "an unknown method",
      JSON.stringify({ jsonrpc: "2.0", id: "m3", method: "vm.explode", params: {} }),
      RPC_ERRORS.methodNotFound,
      "method",
      "m3",
    ],
    [
      "an agent-side method",
      JSON.stringify({ jsonrpc: "2.0", id: "m4", method: "vif.report", params: {} }),
      RPC_ERRORS.methodNotFound,
      "method",
      "m4",
    ],
    [
      "a wrong type",
      JSON.stringify({ jsonrpc: "2.0", id: "m5", method: "network.ensure", params: { ...VALID_ENSURE, mtu: "9000" } }),
      RPC_ERRORS.invalidParams,
      "params.mtu",
      "m5",
    ],
    [
      "an extra field",
      JSON.stringify({ jsonrpc: "2.0", id: "m6", method: "network.ensure", params: { ...VALID_ENSURE, bridge: "br0" } }),
      RPC_ERRORS.invalidParams,
      "params.bridge",
      "m6",
    ],
    [
      "a /48 prefix",
      JSON.stringify({ jsonrpc: "2.0", id: "m7", method: "network.ensure", params: { networkId: "n1", prefix: "2001:db8::/48" } }),
      RPC_ERRORS.invalidParams,
      "params.prefix",
      "m7",
    ],
    [
      "a frame over the message limit",
      JSON.stringify({ jsonrpc: "2.0", id: "m8", method: "vm.list", params: { pad: "x".repeat(MAX) } }),
      RPC_ERRORS.invalidRequest,
      "message",
      null,
    ],
  ])("%s", async (_name, frame, code, field, id) => {
    const { server, answers, disconnects, handler } = await connectedAgent();
    server.sendRaw("host-1", frame);
    await eventually(() => answers.length === 1, "the agent's answer");
    expect(answers[0]).toMatchObject({ kind: "error", id, error: { code, data: { field } } });
    if (field === "params.prefix") expect(answers[0]?.error?.message).toMatch(/\/48.*\/64/);
    // The connection survived and still works.
    await expect(server.call("host-1", "vm.list", {})).resolves.toEqual({ vms: [] });
    expect(disconnects()).toBe(0);
    expect(handler.executions.size).toBe(1);
  });

  it("a binary frame", async () => {
    const { server, answers, disconnects } = await connectedAgent();
    server.sendRaw("host-1", Buffer.from(JSON.stringify({ jsonrpc: "2.0", id: "b1", method: "vm.list" })), { binary: true });
    await eventually(() => answers.length === 1, "the agent's answer");
    expect(answers[0]).toMatchObject({ kind: "error", id: null, error: { code: RPC_ERRORS.parseError, data: { field: "message" } } });
    expect(answers[0]?.error?.message).toMatch(/binary frames are not accepted/);
    await expect(server.call("host-1", "vm.list", {})).resolves.toEqual({ vms: [] });
    expect(disconnects()).toBe(0);
  });

  it("a frame beyond the transport cap closes with 1009 and the agent reconnects", async () => {
    const { server, channel } = await connectedAgent();
    const closed = new Promise<{ reason: string }>((resolve) => channel.once("disconnected", resolve));
    const back = nextConnected(channel);
    server.sendRaw("host-1", "x".repeat(MAX * 4 + 1));
    expect((await closed).reason).toMatch(/1009|Max payload/);
    await back;
    await expect(server.call("host-1", "vm.list", {})).resolves.toEqual({ vms: [] });
  });

  it("a flood of 500 commands: 8 run, 256 wait, the rest are answered busy; each gets exactly one answer", async () => {
    const { server, handler, disconnects } = await connectedAgent();
    for (let i = 0; i < 500; i++) handler.hold(vmUuid(1000 + i));
    let busy = 0;
    const calls = Array.from({ length: 500 }, (_, i) =>
      server.call("host-1", "vm.stop", { uuid: vmUuid(1000 + i) }, { id: `flood-${i}` }).then(
        () => "ok",
        (error: { rpc?: { code: number } }) => {
          if (error.rpc?.code !== RPC_ERRORS.busy) return `other ${String(error)}`;
          busy++;
          return "busy";
        },
      ),
    );
    await eventually(() => busy === 500 - 8 - 256 && handler.executions.size === 8, "the overflow answered busy");
    for (let i = 0; i < 500; i++) handler.release(vmUuid(1000 + i));
    const outcomes = await Promise.all(calls);
    expect(outcomes.filter((outcome) => outcome === "ok")).toHaveLength(264);
    expect(outcomes.filter((outcome) => outcome === "busy")).toHaveLength(236);
    expect(handler.executions.size).toBe(264);
    for (const count of handler.executions.values()) expect(count).toBe(1);
    expect(disconnects()).toBe(0);
  });
});

describe("malformed input to the reference server", () => {
  async function rawAgent() {
    const server = new ManagementServer({ unauthenticatedLoopback: true, maxMessageBytes: MAX });
    const { url } = await server.start();
    cleanups.push(() => server.stop());
    const socket = new WebSocket(url, SUBPROTOCOL);
    cleanups.push(async () => socket.terminate());
    const answers: { id: unknown; error?: { code: number; data?: { field?: string } }; result?: unknown }[] = [];
    socket.on("message", (data) => answers.push(JSON.parse(String(data))));
    await new Promise((resolve) => socket.once("open", resolve));
    let asked = 0;
    const ask = async (frame: string | Buffer, binary = false) => {
      const before = answers.length;
      asked++;
      socket.send(frame, { binary });
      await eventually(() => answers.length > before, "the server's answer");
      // Exactly one answer per frame: the server answers in order, so an extra answer to an
      // earlier frame would already be here.
      expect(answers.length).toBe(asked);
      return answers[answers.length - 1];
    };
    return { server, socket, ask };
  }

  it("answers each malformed class with its documented error and keeps the connection", async () => {
    const { server, socket, ask } = await rawAgent();
    expect(await ask("nope")).toMatchObject({ id: null, error: { code: RPC_ERRORS.parseError, data: { field: "message" } } });
    expect(await ask(Buffer.from("{}"), true)).toMatchObject({ id: null, error: { code: RPC_ERRORS.parseError } });
    expect(await ask(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "agent.heartbeat", params: { vms: [], vifs: [] } }))).toMatchObject({
      id: 1,
      error: { code: RPC_ERRORS.invalidRequest, data: { field: "method" } },
    });
    expect(await ask(JSON.stringify({ jsonrpc: "2.0", id: 2, method: "vm.stop", params: {} }))).toMatchObject({
      id: 2,
      error: { code: RPC_ERRORS.methodNotFound, data: { field: "method" } },
    });
    const hello = {
      hostId: "raw-1",
      hostname: "raw",
      hypervisor: "kvm",
      versions: { agent: "0", hypervisor: "0" },
      capabilities: [],
      inventory: { networks: [{ networkId: "n", prefix: "2001:db8::/48" }], vifs: [] },
    };
    const refused = await ask(JSON.stringify({ jsonrpc: "2.0", id: 3, method: "agent.hello", params: hello }));
    expect(refused).toMatchObject({
      id: 3,
      error: { code: RPC_ERRORS.invalidParams, data: { field: "params.inventory.networks[0].prefix" } },
    });
    expect(server.agents()).toEqual([]);
    const accepted = await ask(
      JSON.stringify({ jsonrpc: "2.0", id: 4, method: "agent.hello", params: { ...hello, inventory: { networks: [], vifs: [] } } }),
    );
    expect(accepted).toMatchObject({ id: 4, result: { resumed: false } });
    expect(server.agent("raw-1")?.connected).toBe(true);
    expect(socket.readyState).toBe(WebSocket.OPEN);
  });

  it("refuses an upgrade without the v6agent subprotocol", async () => {
    const server = new ManagementServer({ unauthenticatedLoopback: true });
    const { url } = await server.start();
    cleanups.push(() => server.stop());
    const socket = new WebSocket(url, "other.v1");
    const status = await new Promise<number | undefined>((resolve) => {
      socket.on("unexpected-response", (_request, response) => resolve(response.statusCode));
      socket.on("error", () => resolve(undefined));
    });
    expect(status).toBe(400);
  });
});

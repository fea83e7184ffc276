import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { AgentChannel } from "../../../src/channel/index.js";
import { ManagementServer } from "../../../src/mgmt/index.js";
import { METHODS, SUBPROTOCOL } from "../../../src/protocol/index.js";
import { makeAgent, nextConnected, RecordingHandler } from "../../support/channel-harness.js";

/**
 * Issue 17, finding 1, as properties: no frame, of any depth, width, size or encoding, stops
 * either end or its connection handling. Each run sends a few hostile frames over a real
 * loopback connection, then proves the connection still works (a command answered, a ping
 * answered) and was never dropped. An exception in either end's frame handling would surface
 * here as an uncaught error. Sizes stay under the transport's hard cap (4× the message limit,
 * where closing with 1009 is the documented answer).
 */
const MAX = 16 * 1024;
const RUNS = 150;

const member = fc.constantFrom("id", "method", "jsonrpc", "params", "result", "error", "x");
const deep = fc.tuple(fc.integer({ min: 1, max: 6000 }), fc.constantFrom("[", '{"k":'), member).map(([depth, open, name]) => {
  const close = open === "[" ? "]" : "}";
  return `{"jsonrpc":"2.0","id":"h","method":"vm.list",${JSON.stringify(name)}:${open.repeat(depth)}0${close.repeat(depth)}}`;
});
const wide = fc
  .tuple(fc.integer({ min: 0, max: 6000 }), member)
  .map(
    ([width, name]) =>
      `{"jsonrpc":"2.0","id":"w","method":"state.sync",${JSON.stringify(name)}:{"networks":[${"{},".repeat(width)}{}],"vms":[]}}`,
  );
const sized = fc
  .integer({ min: MAX - 64, max: MAX * 3 })
  .map((size) => `{"jsonrpc":"2.0","id":"s","method":"vm.list","params":{"p":"${"x".repeat(size)}"}}`);
const bytes = fc.uint8Array({ maxLength: 512 }).map((array) => Buffer.from(array));
const methods = Object.keys(METHODS);
const rpcish = fc
  .record(
    {
      jsonrpc: fc.oneof(fc.constant("2.0"), fc.jsonValue({ maxDepth: 2 })),
      id: fc.oneof(fc.string({ maxLength: 200 }), fc.integer(), fc.constant(null), fc.jsonValue({ maxDepth: 3 })),
      method: fc.oneof(fc.constantFrom(...methods), fc.string(), fc.jsonValue({ maxDepth: 2 })),
      params: fc.jsonValue({ maxDepth: 6 }),
      result: fc.jsonValue({ maxDepth: 4 }),
      error: fc.jsonValue({ maxDepth: 3 }),
    },
    { requiredKeys: [] },
  )
  .map((value) => JSON.stringify(value));
const frame = fc.record({
  data: fc.oneof(deep, wide, sized, bytes, rpcish, fc.string({ unit: "binary", maxLength: 300 })),
  binary: fc.boolean(),
});

describe("hostile frames to the agent", () => {
  let server: ManagementServer;
  let channel: AgentChannel;
  let disconnects = 0;
  beforeAll(async () => {
    server = new ManagementServer({ unauthenticatedLoopback: true, maxMessageBytes: MAX });
    const { url } = await server.start();
    ({ channel } = makeAgent({ servers: [url], limits: { maxMessageBytes: MAX } }, new RecordingHandler()));
    channel.on("disconnected", () => disconnects++);
    const connected = nextConnected(channel);
    channel.start();
    await connected;
  });
  afterAll(async () => {
    await channel.stop({ graceMs: 1000 });
    await server.stop();
  });

  it("answers or ignores every frame and keeps the connection working", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 4 }), async (frames) => {
        for (const { data, binary } of frames) server.sendRaw("host-1", data, { binary });
        await expect(server.call("host-1", "vm.list", {}, { timeoutMs: 5000 })).resolves.toEqual({ vms: [] });
        expect(disconnects).toBe(0);
      }),
      { numRuns: RUNS },
    );
  }, 60_000);
});

describe("hostile frames to the reference server", () => {
  let server: ManagementServer;
  let url: string;
  beforeAll(async () => {
    server = new ManagementServer({ unauthenticatedLoopback: true, maxMessageBytes: MAX });
    ({ url } = await server.start());
  });
  afterAll(() => server.stop());

  /** Opens a raw agent connection; `hello` says hello first. */
  async function open(hello: boolean) {
    const socket = new WebSocket(url, SUBPROTOCOL);
    const answers = new Map<unknown, unknown>();
    socket.on("message", (data) => {
      const message = JSON.parse(String(data)) as { id?: unknown };
      answers.set(message.id, message);
    });
    let closed = false;
    socket.on("close", () => {
      closed = true;
    });
    await new Promise((resolve) => socket.once("open", resolve));
    const ask = async (id: string, method: string, params: unknown) => {
      socket.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
      const deadline = Date.now() + 5000;
      while (!answers.has(id) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
      return answers.get(id) as { result?: unknown; error?: { code: number } } | undefined;
    };
    if (hello) {
      const params = {
        hostId: `fuzz-${Math.random()}`,
        hostname: "fuzz",
        hypervisor: "kvm",
        versions: { agent: "0", hypervisor: "0" },
        capabilities: [],
        inventory: { networks: [], vifs: [] },
      };
      expect(await ask("hello", "agent.hello", params)).toMatchObject({ result: { resumed: false } });
    }
    return { socket, ask, closed: () => closed };
  }

  it("answers or ignores every frame, before and after hello, and keeps the connection working", async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.array(frame, { minLength: 1, maxLength: 4 }), async (hello, frames) => {
        const { socket, ask, closed } = await open(hello);
        for (const { data, binary } of frames) socket.send(data, { binary });
        const answer = await ask(`ping-${++n}`, "agent.ping", {});
        // Before hello a ping is refused (-32600), after it answered: either way, answered.
        expect(answer).toBeDefined();
        expect(closed()).toBe(false);
        socket.terminate();
      }),
      { numRuns: RUNS },
    );
  }, 60_000);
});

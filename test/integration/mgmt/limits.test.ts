import { type Socket, connect as tcpConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { ManagementServer, type ManagementServerOptions } from "../../../src/mgmt/index.js";
import { RPC_ERRORS, SUBPROTOCOL } from "../../../src/protocol/index.js";
import { eventually, makeAgent, nextConnected } from "../../support/channel-harness.js";
import { skipReason } from "../../support/requirements.js";
import { makeTlsMaterial, type TlsMaterial } from "../../support/tls-material.js";

/**
 * Issue 17, finding 4: what the reference server keeps of what peers send was bounded by count,
 * not bytes (600 hellos of 1 MiB: 1.1 GiB); 1,000 sockets that never started TLS were held for
 * 120 s with no cap; departed hosts were never forgotten.
 */
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(options: Partial<ManagementServerOptions> = {}) {
  const server = new ManagementServer({ unauthenticatedLoopback: true, ...options });
  const started = await server.start();
  cleanups.push(() => server.stop());
  return { server, ...started };
}

/** A raw agent connection that says hello with `vifs` VIF reports in its inventory (~250 bytes each). */
async function rawAgent(url: string) {
  const socket = new WebSocket(url, SUBPROTOCOL);
  cleanups.push(() => socket.terminate());
  const answers = new Map<unknown, { result?: unknown; error?: { code: number; message: string } }>();
  socket.on("message", (data) => {
    const message = JSON.parse(String(data));
    answers.set(message.id, message);
  });
  await new Promise((resolve) => socket.once("open", resolve));
  let n = 0;
  return {
    socket,
    async hello(hostId: string, vifs: number) {
      const id = `h${++n}`;
      const vif = (i: number) => {
        const mac = `52:54:00:${((i >> 16) & 0xff).toString(16).padStart(2, "0")}:${((i >> 8) & 0xff).toString(16).padStart(2, "0")}:${(i & 0xff).toString(16).padStart(2, "0")}`;
        return {
          vmUuid: "00000000-0000-4000-8000-000000000001",
          mac,
          duidLL: `00:03:00:01:${mac}`,
          linkLocal: "fe80::1",
          state: "protected",
        };
      };
      const params = {
        hostId,
        hostname: "h",
        hypervisor: "kvm",
        versions: { agent: "0", hypervisor: "0" },
        capabilities: [],
        inventory: { networks: [], vifs: Array.from({ length: vifs }, (_, i) => vif(i)) },
      };
      socket.send(JSON.stringify({ jsonrpc: "2.0", id, method: "agent.hello", params }));
      await eventually(() => answers.has(id), `answer to ${id}`);
      return answers.get(id);
    },
  };
}

describe("memory bounded in bytes", () => {
  it("the report log keeps at most its byte budget, however many hellos arrive", async () => {
    const { server, url } = await serve({ maxReportBytes: 256 * 1024, maxMessageBytes: 256 * 1024 });
    const agent = await rawAgent(url);
    for (let i = 0; i < 30; i++) expect(await agent.hello("big-host", 200)).toHaveProperty("result");
    expect(server.reports.bytes).toBeGreaterThan(0);
    expect(server.reports.bytes).toBeLessThanOrEqual(256 * 1024);
    expect(server.reports.size).toBeLessThan(30);
    expect(server.reports.query().at(-1)?.seq).toBe(30);
  });

  it("agent inventories stay within their budget: a hello that does not fit is refused busy, a departed host makes room", async () => {
    const { server, url } = await serve({ maxAgentBytes: 80 * 1024, pingIntervalMs: 50 });
    const first = await rawAgent(url);
    expect(await first.hello("host-a", 300)).toHaveProperty("result");
    const second = await rawAgent(url);
    expect(await second.hello("host-b", 300)).toMatchObject({
      error: { code: RPC_ERRORS.busy, message: expect.stringMatching(/memory for agent inventories is full/) },
    });
    expect(server.agent("host-b")).toBeUndefined();
    first.socket.terminate();
    await eventually(() => server.agent("host-a")?.connected === false, "host-a departed");
    expect(await second.hello("host-b", 300)).toHaveProperty("result");
    expect(server.agent("host-a")).toBeUndefined();
    expect(server.registry.bytes).toBeLessThanOrEqual(80 * 1024);
  });

  it("forgets a departed host after the configured time", async () => {
    const { server, url } = await serve({ departedHostTtlMs: 200, pingIntervalMs: 50 });
    const { channel } = makeAgent({ servers: [url] });
    const connected = nextConnected(channel);
    channel.start();
    await connected;
    expect(server.agent("host-1")?.connected).toBe(true);
    await channel.stop({ graceMs: 100 });
    await eventually(() => server.agent("host-1") === undefined, "host-1 forgotten");
    expect(server.agents()).toEqual([]);
  });
});

/** Opens `count` sockets that send nothing; resolves with them once connected (or closed at once). */
async function idleSockets(count: number, open: () => Socket): Promise<{ sockets: Socket[]; closed: () => number }> {
  let closed = 0;
  const sockets = await Promise.all(
    Array.from({ length: count }, async () => {
      const socket = open();
      socket.on("error", () => undefined);
      socket.on("close", () => {
        closed += 1;
      });
      await new Promise((resolve) => {
        socket.once("connect", resolve);
        socket.once("close", resolve);
      });
      return socket;
    }),
  );
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
  });
  return { sockets, closed: () => closed };
}

describe("connection cap and handshake deadline", () => {
  it("plain ws: holds at most maxConnections sockets and closes the silent ones within the deadline; agents still get in", async () => {
    const { server, port, url } = await serve({ maxConnections: 5, handshakeTimeoutMs: 400 });
    const idle = await idleSockets(12, () => tcpConnect(port, "127.0.0.1"));
    // Beyond the cap, sockets are dropped at once; the rest when their deadline passes.
    await eventually(() => idle.closed() >= 7, "the sockets beyond the cap dropped", 5000);
    await eventually(() => idle.closed() === 12, "the silent sockets closed by the deadline", 5000);
    const { channel } = makeAgent({ servers: [url] });
    cleanups.push(() => channel.stop({ graceMs: 100 }));
    const connected = nextConnected(channel);
    channel.start();
    await connected;
    expect(server.connections).toEqual({ sessions: 1, handshaking: 0 });
  });

  it("an upgraded connection that never says hello is closed at the deadline", async () => {
    const { url } = await serve({ handshakeTimeoutMs: 400 });
    const socket = new WebSocket(url, SUBPROTOCOL);
    cleanups.push(() => socket.terminate());
    const closed = new Promise<number>((resolve) => socket.once("close", resolve));
    await new Promise((resolve) => socket.once("open", resolve));
    expect(await closed).toBe(1006);
  });
});

const skip = skipReason({ commands: ["openssl"] });
describe.skipIf(skip)("connection cap and handshake deadline with TLS", () => {
  let pki: TlsMaterial;
  beforeAll(() => {
    pki = makeTlsMaterial();
  });
  afterAll(() => pki?.cleanup());

  it("sockets that never start TLS, or start it and send no request, are closed within the deadline", async () => {
    const { port } = await serve({ tls: { cert: pki.serverCert, key: pki.serverKey }, handshakeTimeoutMs: 400 });
    const silent = await idleSockets(5, () => tcpConnect(port, "127.0.0.1"));
    const afterTls = await idleSockets(5, () => tlsConnect({ port, host: "127.0.0.1", ca: pki.ca, servername: "localhost" }));
    await eventually(() => silent.closed() === 5 && afterTls.closed() === 5, "every idle socket closed", 5000);
  });
});

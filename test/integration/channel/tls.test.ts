import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { AgentChannelOptions } from "../../../src/channel/index.js";
import { ManagementServer, type ManagementServerOptions } from "../../../src/mgmt/index.js";
import { makeAgent, nextConnected } from "../../support/channel-harness.js";
import { skipReason } from "../../support/requirements.js";
import { makeTlsMaterial, type TlsMaterial } from "../../support/tls-material.js";

const skip = skipReason({ commands: ["openssl"] });
let pki: TlsMaterial;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(() => {
  if (!skip) pki = makeTlsMaterial();
});
afterAll(() => pki?.cleanup());
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(options: Partial<ManagementServerOptions>): Promise<{ server: ManagementServer; url: string }> {
  const server = new ManagementServer({ tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca }, ...options });
  const { url } = await server.start();
  cleanups.push(() => server.stop());
  return { server, url: url.replace("127.0.0.1", "localhost") };
}

/** Starts an agent and resolves with the first outcome: connected, or the reason of the first failure. */
async function attempt(options: Partial<AgentChannelOptions> & Pick<AgentChannelOptions, "servers">): Promise<string> {
  const { channel } = makeAgent({ ...options, backoff: { initialMs: 5000, maxMs: 5000, factor: 1 } });
  cleanups.push(() => channel.stop());
  const outcome = new Promise<string>((resolve) => {
    channel.once("connected", () => resolve("connected"));
    channel.once("disconnected", (info) => resolve(info.reason));
  });
  channel.start();
  return outcome;
}

describe.skipIf(skip)("channel TLS: pinned CA, mutual TLS, bearer token", () => {
  it("connects with the pinned CA and a client certificate from the server's CA", async () => {
    const { server, url } = await serve({});
    expect(await attempt({ servers: [url], tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } })).toBe("connected");
    expect(server.agent("host-1")?.certificateSubject).toBe("host-1");
  });

  // Issue 17, finding 7: these refusals were logged on both ends only as "socket hang up".
  it.each([
    ["from another CA", () => ({ cert: pki.rogueClientCert, key: pki.rogueClientKey }), /the certificate is not signed by the client CA/],
    ["that has expired", () => ({ cert: pki.expiredClientCert, key: pki.expiredClientKey }), /the certificate has expired/],
    [
      "not made for client authentication",
      () => ({ cert: pki.wrongUsageClientCert, key: pki.wrongUsageClientKey }),
      /the certificate is not for client authentication/,
    ],
    ["missing", () => ({}), /no client certificate was presented/],
  ])("the server refuses a client certificate %s, and both ends log why", async (_name, client, reason) => {
    const lines: string[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => lines.push(line) });
    const { server, url } = await serve({ logger });
    const outcome = await attempt({ servers: [url], tls: { ca: pki.ca, ...client() } });
    expect(outcome).toMatch(/^server refused the connection: HTTP 403 client certificate refused: /);
    expect(outcome).toMatch(reason);
    expect(lines.join("")).toMatch(reason);
    expect(server.agents()).toEqual([]);
  });

  it("against a server that drops a refused certificate mid-handshake, the agent says what it likely means", async () => {
    const strict = createServer({ cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, requestCert: true, rejectUnauthorized: true });
    await new Promise<void>((resolve) => strict.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise<void>((resolve) => strict.close(() => resolve())));
    const url = `wss://localhost:${(strict.address() as AddressInfo).port}/v6agent`;
    const outcome = await attempt({ servers: [url], tls: { ca: pki.ca, cert: pki.rogueClientCert, key: pki.rogueClientKey } });
    expect(outcome).toMatch(/the server may have refused this agent's client certificate/);
  });

  it("the agent refuses a server certificate not made for server authentication", async () => {
    const server = new ManagementServer({
      unauthenticatedLoopback: true,
      tls: { cert: pki.wrongUsageServerCert, key: pki.wrongUsageServerKey },
    });
    const { url } = await server.start();
    cleanups.push(() => server.stop());
    expect(await attempt({ servers: [url], tls: { ca: pki.ca } })).toMatch(/unsuitable certificate purpose/);
  });

  it("the agent refuses a server whose certificate does not chain to the pinned CA", async () => {
    const server = new ManagementServer({ unauthenticatedLoopback: true, tls: { cert: pki.rogueServerCert, key: pki.rogueServerKey } });
    const { url } = await server.start();
    cleanups.push(() => server.stop());
    const outcome = await attempt({ servers: [url], tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
    expect(outcome).toMatch(/self[- ]signed|unable to (get|verify)|certificate/i);
    expect(server.agents()).toEqual([]);
  });

  it("the agent refuses an expired server certificate", async () => {
    const server = new ManagementServer({ unauthenticatedLoopback: true, tls: { cert: pki.expiredServerCert, key: pki.expiredServerKey } });
    const { url } = await server.start();
    cleanups.push(() => server.stop());
    expect(await attempt({ servers: [url], tls: { ca: pki.ca } })).toMatch(/certificate has expired/);
  });

  it("a token server refuses a missing or wrong bearer token with 401 and accepts the right one", async () => {
    const { server, url } = await serve({ tls: { cert: pki.serverCert, key: pki.serverKey }, tokens: ["s3cret-token"] });
    expect(await attempt({ servers: [url], tls: { ca: pki.ca } })).toMatch(/HTTP 401/);
    expect(await attempt({ servers: [url], tls: { ca: pki.ca }, token: "wrong-token!" })).toMatch(/HTTP 401/);
    expect(server.agents()).toEqual([]);
    const { channel } = makeAgent({ servers: [url], tls: { ca: pki.ca }, token: "s3cret-token" });
    cleanups.push(() => channel.stop());
    const connected = nextConnected(channel);
    channel.start();
    await connected;
    expect(server.agent("host-1")?.connected).toBe(true);
  });
});

describe("channel URL policy", () => {
  it("refuses plain ws:// to a non-loopback host without the insecure flag, and wss:// without a pinned CA", () => {
    expect(() => makeAgent({ servers: ["ws://192.0.2.1:8443/v6agent"] })).toThrow(/servers\[0\]: .*plain ws:\/\/ to a non-loopback host/);
    expect(() => makeAgent({ servers: ["wss://192.0.2.1:8443/v6agent"] })).toThrow(/servers\[0\]: .*pinned CA/);
    expect(() => makeAgent({ servers: ["ws://192.0.2.1:8443/v6agent"], allowInsecure: true })).not.toThrow();
    expect(() => new ManagementServer({ unauthenticatedLoopback: true, host: "0.0.0.0" })).toThrow(
      /needs TLS or the explicit insecure flag/,
    );
  });
});

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
    expect(server.agent("host-1")?.certificateSubject).toBe("client");
  });

  it("the server refuses a client certificate from another CA", async () => {
    const { server, url } = await serve({});
    const outcome = await attempt({ servers: [url], tls: { ca: pki.ca, cert: pki.rogueClientCert, key: pki.rogueClientKey } });
    expect(outcome).not.toBe("connected");
    expect(outcome).toMatch(/certificate|alert|socket hang up|ECONNRESET/i);
    expect(server.agents()).toEqual([]);
  });

  it("the server refuses a client without a certificate", async () => {
    const { server, url } = await serve({});
    expect(await attempt({ servers: [url], tls: { ca: pki.ca } })).not.toBe("connected");
    expect(server.agents()).toEqual([]);
  });

  it("the agent refuses a server whose certificate does not chain to the pinned CA", async () => {
    const server = new ManagementServer({ tls: { cert: pki.rogueServerCert, key: pki.rogueServerKey } });
    const { url } = await server.start();
    cleanups.push(() => server.stop());
    const outcome = await attempt({ servers: [url], tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
    expect(outcome).toMatch(/self[- ]signed|unable to (get|verify)|certificate/i);
    expect(server.agents()).toEqual([]);
  });

  it("the agent refuses an expired server certificate", async () => {
    const server = new ManagementServer({ tls: { cert: pki.expiredServerCert, key: pki.expiredServerKey } });
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
    expect(() => new ManagementServer({ host: "0.0.0.0" })).toThrow(/needs TLS or the explicit insecure flag/);
  });
});

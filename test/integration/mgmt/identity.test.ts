import { createHash } from "node:crypto";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { AgentChannelOptions } from "../../../src/channel/index.js";

import { ManagementServer, type ManagementServerOptions, parseHostTokens } from "../../../src/mgmt/index.js";
import { hello, makeAgent, RecordingHandler, vmUuid } from "../../support/channel-harness.js";
import { skipReason } from "../../support/requirements.js";
import { makeTlsMaterial, type TlsMaterial } from "../../support/tls-material.js";

/**
 * Issue 17, finding 2: the reference server trusted hello's hostId whatever credential came with
 * it; a client with host B's certificate and the token said hello as host A, took over A's
 * session and answered A's commands. Now the hostId is bound to the credential: a mismatch is
 * refused at hello (-32012) and logged with both identities; the real host keeps its session.
 */
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

async function serve(options: Partial<ManagementServerOptions>) {
  const lines: string[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => lines.push(line) });
  const server = new ManagementServer({ tls: { cert: pki.serverCert, key: pki.serverKey }, logger, ...options });
  const { url } = await server.start();
  cleanups.push(() => server.stop());
  return { server, url: url.replace("127.0.0.1", "localhost"), log: () => lines.join("") };
}

/** The first outcome of an agent: "connected", or why it was disconnected. */
async function attempt(
  hostId: string,
  options: Partial<AgentChannelOptions> & Pick<AgentChannelOptions, "servers">,
  handler = new RecordingHandler(),
) {
  const { channel } = makeAgent({ hello: hello(hostId), backoff: { initialMs: 5000, maxMs: 5000, factor: 1 }, ...options }, handler);
  cleanups.push(() => channel.stop({ graceMs: 500 }));
  const outcome = new Promise<string>((resolve) => {
    channel.once("connected", () => resolve("connected"));
    channel.once("disconnected", (info) => resolve(info.reason));
  });
  channel.start();
  return { outcome: await outcome, channel, handler };
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

describe.skipIf(skip)("identity bound to credentials", () => {
  it("mutual TLS: a hostId must be the certificate's CN (no SAN) or one of its DNS SANs", async () => {
    const { server, url, log } = await serve({ tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca } });
    const tls = (cert: string, key: string) => ({ ca: pki.ca, cert, key });
    expect((await attempt("host-1", { servers: [url], tls: tls(pki.clientCert, pki.clientKey) })).outcome).toBe("connected");
    expect(server.agent("host-1")).toMatchObject({ credential: "certificate", certificateSubject: "host-1" });
    expect((await attempt("host-2", { servers: [url], tls: tls(pki.host2Cert, pki.host2Key) })).outcome).toBe("connected");
    // With a SAN, the CN does not count.
    const byCn = await attempt("other-name", { servers: [url], tls: tls(pki.host2Cert, pki.host2Key) });
    expect(byCn.outcome).toMatch(
      /agent.hello failed: params.hostId: "other-name" is not the host this connection authenticated as: the client certificate is for "host-2"/,
    );
    expect(server.agent("other-name")).toBeUndefined();
    expect(log()).toMatch(/"claimed":"other-name","certificate":\["host-2"\].*refused agent.hello/);
  });

  it("host B's certificate cannot take over host A: refused at hello, A keeps its session and its commands", async () => {
    const { server, url, log } = await serve({ tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca } });
    const a = await attempt("host-1", { servers: [url], tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
    expect(a.outcome).toBe("connected");
    let aDropped = false;
    a.channel.on("disconnected", () => {
      aDropped = true;
    });
    const impostor = new RecordingHandler();
    const b = await attempt("host-1", { servers: [url], tls: { ca: pki.ca, cert: pki.host2Cert, key: pki.host2Key } }, impostor);
    expect(b.outcome).toMatch(/is not the host this connection authenticated as/);
    await expect(server.call("host-1", "vm.stop", { uuid: vmUuid(1) }, { id: "for-a" })).resolves.toMatchObject({ state: "stopped" });
    expect(a.handler.count("for-a")).toBe(1);
    expect(impostor.executions.size).toBe(0);
    expect(aDropped).toBe(false);
    expect(server.agent("host-1")).toMatchObject({ connected: true, certificateSubject: "host-1" });
    expect(log()).toMatch(/"claimed":"host-1","certificate":\["host-2"\]/);
  });

  it("per-host tokens: a token names one host; another hostId is refused, an unknown token gets 401", async () => {
    const tokens = parseHostTokens(`sha256:${sha256("token-of-a")} host-a\nsha256:${sha256("token-of-b")} host-b\n`, "tokens");
    const { server, url, log } = await serve({ hostTokens: tokens });
    const withToken = (token: string) => ({ servers: [url], tls: { ca: pki.ca }, token });
    expect((await attempt("host-a", withToken("token-of-a"))).outcome).toBe("connected");
    expect(server.agent("host-a")?.credential).toBe("host-token");
    const borrowed = await attempt("host-a", withToken("token-of-b"));
    expect(borrowed.outcome).toMatch(
      /"host-a" is not the host this connection authenticated as: the bearer token belongs to host "host-b"/,
    );
    expect(log()).toMatch(/"claimed":"host-a","tokenHost":"host-b"/);
    expect((await attempt("host-c", withToken("no-such-token"))).outcome).toMatch(/HTTP 401/);
    expect(server.agent("host-b")).toBeUndefined();
  });

  it("a lab token is the explicit exception: any holder may be any host", async () => {
    const { server, url } = await serve({ tokens: ["lab-secret"] });
    expect((await attempt("anything", { servers: [url], tls: { ca: pki.ca }, token: "lab-secret" })).outcome).toBe("connected");
    expect(server.agent("anything")?.credential).toBe("lab-token");
  });

  it("refuses to start without agent authentication, unless told loopback-only, and then only on loopback", () => {
    expect(() => new ManagementServer({})).toThrow(/agents: no agent authentication configured/);
    expect(() => new ManagementServer({ host: "::1" })).toThrow(/agents: no agent authentication configured/);
    expect(() => new ManagementServer({ unauthenticatedLoopback: true, host: "0.0.0.0", allowInsecure: true })).toThrow(
      /agents without credentials are accepted on loopback only/,
    );
    expect(() => parseHostTokens("host-a sha256:abc\n", "t")).toThrow(/t:1: expected `sha256:<64 hex digits> <hostId>`/);
  });
});

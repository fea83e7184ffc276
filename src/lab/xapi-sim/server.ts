import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../../exec.js";
import { Database } from "./database.js";
import type { Dom0Network } from "./dom0.js";
import { XapiFailure } from "./failure.js";
import { type NetworkBackend, XapiSeed } from "./seed.js";
import { XapiSimulator } from "./simulator.js";
import { methodResponse, parseMethodCall } from "./xmlrpc.js";

/** A fault the simulator injects into matching calls (`method` is exact or a RegExp). */
export type Fault =
  /** Every session dies just before the call is handled, so it fails with SESSION_INVALID. */
  | { kind: "expire-session"; method: string | RegExp; times?: number }
  /** The answer is held back for `ms` milliseconds. */
  | { kind: "delay"; method: string | RegExp; ms: number; times?: number }
  /** The TCP connection is destroyed without an answer (ECONNRESET / socket hang up). */
  | { kind: "reset"; method: string | RegExp; times?: number }
  /** The call fails with this XAPI error. */
  | { kind: "failure"; method: string | RegExp; code: string; params?: string[]; times?: number };

export interface RecordedCall {
  method: string;
  /** Parameters after the session reference (credentials are never recorded). */
  params: unknown[];
}

export interface XapiSimulatorOptions {
  /** Serve HTTPS with a fresh self-signed certificate for 127.0.0.1. */
  https?: boolean;
  /** Default 127.0.0.1; port 0 picks a free one. */
  host?: string;
  port?: number;
  users?: Record<string, string>;
  /** The seeded host's network backend (default `bridge`). */
  networkBackend?: NetworkBackend;
  /** Seed one host with a management PIF `eth0` on `xenbr0` (default true). */
  seedHost?: boolean;
  dom0?: Dom0Network;
  asyncDelayMs?: number;
  /** See `SimulatorOptions.vifAnswerDelayMs`. */
  vifAnswerDelayMs?: number;
  /** Events `event.from` can replay (default 10,000); an older token gets EVENTS_LOST. */
  maxEvents?: number;
  /** Serve JSON-RPC at /jsonrpc (default true); false plays a host older than XenServer 7.3. */
  jsonRpc?: boolean;
}

export interface RunningXapiSimulator {
  /** `http(s)://127.0.0.1:<port>`: give it to the xen-api client as is. */
  url: string;
  /** The self-signed certificate (PEM) when serving HTTPS. */
  certificate: string | undefined;
  simulator: XapiSimulator;
  db: Database;
  seed: XapiSeed;
  /** The seeded host, its management PIF and physical network (when `seedHost`). */
  host: { ref: string; uuid: string; pif: string; network: string } | undefined;
  /** Calls received, oldest first (login included, with its credentials left out). */
  readonly calls: readonly RecordedCall[];
  callCount(method?: string | RegExp): number;
  clearCalls(): void;
  addFault(fault: Fault): void;
  clearFaults(): void;
  close(): Promise<void>;
}

/**
 * Starts a wire-compatible XAPI simulator: JSON-RPC v1 and v2 at POST /jsonrpc exactly as XAPI
 * serves it (reply Content-Type `application/json`, errors as `{code: 1, message, data}` in v2
 * and `[code, ...params]` in v1) and XML-RPC elsewhere (`{Status, Value | ErrorDescription}`),
 * over HTTP or HTTPS. Used by tests and by `v6agent lab`.
 */
export async function startXapiSimulator(options: XapiSimulatorOptions = {}): Promise<RunningXapiSimulator> {
  const db = new Database({ maxEvents: options.maxEvents });
  const simulator = new XapiSimulator(db, {
    users: options.users,
    dom0: options.dom0,
    asyncDelayMs: options.asyncDelayMs,
    vifAnswerDelayMs: options.vifAnswerDelayMs,
  });
  const seed = new XapiSeed(db, simulator);
  seed.pool();
  let host: RunningXapiSimulator["host"];
  if (options.seedHost ?? true) {
    const seededHost = seed.host({ networkBackend: options.networkBackend ?? "bridge" });
    const physical = seed.physicalNetwork({ host: seededHost.ref, device: "eth0", bridge: "xenbr0", management: true });
    host = { ...seededHost, pif: physical.pif.ref, network: physical.network.ref };
  }

  const calls: RecordedCall[] = [];
  const faults: { fault: Fault; left: number }[] = [];

  function takeFault(method: string): Fault | undefined {
    const index = faults.findIndex(({ fault }) => (typeof fault.method === "string" ? fault.method === method : fault.method.test(method)));
    const entry = faults[index];
    if (entry === undefined) return undefined;
    entry.left -= 1;
    if (entry.left <= 0) faults.splice(index, 1);
    return entry.fault;
  }

  /** One call through the fault injector and the simulator; undefined when the connection was cut. */
  async function dispatch(
    request: IncomingMessage,
    method: string,
    params: unknown[],
  ): Promise<{ ok: true; value: unknown } | { ok: false; failure: XapiFailure } | undefined> {
    calls.push({ method, params: method === "session.login_with_password" ? [] : params.slice(1) });
    const fault = takeFault(method);
    if (fault?.kind === "reset") {
      request.socket.destroy();
      return undefined;
    }
    if (fault?.kind === "delay") await new Promise((resolve) => setTimeout(resolve, fault.ms));
    if (fault?.kind === "expire-session") simulator.expireSessions();
    try {
      if (fault?.kind === "failure") throw new XapiFailure(fault.code, ...(fault.params ?? []));
      return { ok: true, value: await simulator.call(method, params) };
    } catch (error) {
      return { ok: false, failure: error instanceof XapiFailure ? error : new XapiFailure("INTERNAL_ERROR", String(error)) };
    }
  }

  async function handleJsonRpc(request: IncomingMessage, response: ServerResponse, body: string): Promise<void> {
    let message: { jsonrpc?: unknown; method?: unknown; params?: unknown; id?: unknown };
    try {
      message = JSON.parse(body) as typeof message;
    } catch {
      response.writeHead(500, { "content-type": "text/plain" }).end("malformed JSON\n");
      return;
    }
    const v2 = message.jsonrpc === "2.0";
    const id = message.id ?? null;
    const method = typeof message.method === "string" ? message.method : "";
    const outcome = await dispatch(request, method, Array.isArray(message.params) ? message.params : []);
    if (outcome === undefined || response.destroyed) return;
    let reply: object;
    if (outcome.ok) reply = v2 ? { jsonrpc: "2.0", result: outcome.value, id } : { result: outcome.value, error: null, id };
    else
      reply = v2
        ? { jsonrpc: "2.0", error: { code: 1, message: outcome.failure.code, data: outcome.failure.params }, id }
        : { result: null, error: outcome.failure.description, id };
    response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(reply));
  }

  async function handleXmlRpc(request: IncomingMessage, response: ServerResponse, body: string): Promise<void> {
    let call: { method: string; params: unknown[] };
    try {
      call = parseMethodCall(body);
    } catch (error) {
      response
        .writeHead(500, { "content-type": "text/html" })
        .end(`<html><body><h1>HTTP 500 internal server error</h1>${String(error)}</body></html>`);
      return;
    }
    const outcome = await dispatch(request, call.method, call.params);
    if (outcome === undefined || response.destroyed) return;
    const xml = methodResponse(outcome.ok ? outcome : { ok: false, description: outcome.failure.description });
    response.writeHead(200, { "content-type": "text/xml" }).end(xml);
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (request.method !== "POST") {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    const body = await readBody(request);
    // xapi serves JSON-RPC at /jsonrpc and XML-RPC at "/" (a prefix: /RPC2 and the xen-api
    // client's /xmlrpc land there too). An "old host" without JSON-RPC answers /jsonrpc in XML.
    const isJsonPath = request.url?.split("?")[0] === "/jsonrpc";
    if (isJsonPath && (options.jsonRpc ?? true)) {
      await handleJsonRpc(request, response, body);
    } else if (isJsonPath) {
      // What the xen-api client expects of a pre-7.3 host ("content-type is text/xml on old
      // hosts where JSON-RPC is unsupported"); modelled on that client, not on a captured reply.
      calls.push({ method: "(JSON-RPC on a host without it)", params: [] });
      response
        .writeHead(200, { "content-type": "text/xml" })
        .end(methodResponse({ ok: false, description: ["MESSAGE_METHOD_UNKNOWN", "jsonrpc"] }));
    } else {
      await handleXmlRpc(request, response, body);
    }
  }

  let certificate: string | undefined;
  let server: Server;
  const listener = (request: IncomingMessage, response: ServerResponse) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(500, { "content-type": "text/plain" }).end(`${String(error)}\n`);
    });
  };
  if (options.https) {
    const tls = await selfSignedCertificate();
    certificate = tls.cert;
    server = createHttpsServer({ key: tls.key, cert: tls.cert }, listener);
  } else {
    server = createHttpServer(listener);
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const address = server.address() as AddressInfo;
  const hostText = address.family === "IPv6" ? `[${address.address}]` : address.address;

  return {
    url: `${options.https ? "https" : "http"}://${hostText}:${address.port}`,
    certificate,
    simulator,
    db,
    seed,
    host,
    calls,
    callCount(filter?: string | RegExp): number {
      if (filter === undefined) return calls.length;
      return calls.filter((call) => (typeof filter === "string" ? call.method === filter : filter.test(call.method))).length;
    },
    clearCalls(): void {
      calls.length = 0;
    },
    addFault(fault: Fault): void {
      faults.push({ fault, left: fault.times ?? 1 });
    },
    clearFaults(): void {
      faults.length = 0;
    },
    async close(): Promise<void> {
      // Answer blocked event.from calls first, so clients see a clean reply rather than a reset.
      simulator.shutdown();
      await new Promise((resolve) => setTimeout(resolve, 20));
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** A throwaway EC key and certificate for 127.0.0.1 (openssl through run(), no shell). */
async function selfSignedCertificate(): Promise<{ key: string; cert: string }> {
  const dir = await mkdtemp(join(tmpdir(), "xapi-sim-"));
  try {
    const keyPath = join(dir, "key.pem");
    const certPath = join(dir, "cert.pem");
    await run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      keyPath,
      "-out",
      certPath,
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ]);
    return { key: await readFile(keyPath, "utf8"), cert: await readFile(certPath, "utf8") };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

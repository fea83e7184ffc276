import { chmodSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { isLoopbackHost } from "../channel/connection-options.js";
import { V6Error } from "../errors.js";
import { isMethodName, METHODS, RemoteError, type ServerMethod, toRpcError } from "../protocol/index.js";
import { sameSecret } from "./agent-auth.js";
import type { ManagementServer } from "./management-server.js";

/**
 * The reference server's small local HTTP API (labs, e2e tests, manual use). It commands every
 * agent, so it is closed by default (issue 17): on TCP every request needs the API's bearer
 * token; on a unix socket the socket is the owner's alone (mode 0600) and no token is asked.
 * A POST must be `application/json`, and any request carrying a browser `Origin` other than the
 * API's own is refused, so a web page cannot drive it.
 *
 *   GET  /v1/agents                         every agent seen, connected or not
 *   GET  /v1/agents/{hostId}                one agent (404 if never seen)
 *   POST /v1/agents/{hostId}/commands       {method, params, id?, timeoutMs?} → {id, result} | {id, error}
 *   GET  /v1/reports?since=&hostId=&method=&waitMs=   reports after `since`; waits up to waitMs for one
 */
export interface HttpApiOptions {
  host?: string;
  port?: number;
  /** Listen on this unix socket (mode 0600) instead of TCP; no token then. */
  socketPath?: string;
  /** Bearer token every TCP request must carry. */
  token?: string;
  /** Listen on a non-loopback address. */
  allowRemote?: boolean;
}

const MAX_BODY = 4 * 1024 * 1024;
/** A reports page stops growing at this many bytes of reports (page on with `since`). */
const MAX_REPORTS_PAGE_BYTES = 8 * 1024 * 1024;

export class ManagementHttpApi {
  private server: Server | undefined;
  private ownOrigin: string | undefined;

  constructor(
    private readonly management: ManagementServer,
    private readonly options: HttpApiOptions = {},
  ) {
    if (options.socketPath !== undefined) return;
    const host = options.host ?? "127.0.0.1";
    if (options.token === undefined || options.token === "") {
      throw new V6Error("invalid_argument", "api: the HTTP API on TCP needs a token (or a unix socket, which is the owner's alone)", {
        field: "api",
      });
    }
    if (!isLoopbackHost(host) && options.allowRemote !== true) {
      throw new V6Error("invalid_argument", `api: ${host} is not loopback (pass the explicit flag to allow it)`, { field: "api" });
    }
  }

  async start(): Promise<{ url: string; port: number | undefined }> {
    const server = createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        // A failure after the headers went out cannot become a 500 any more: end the response.
        if (response.headersSent) response.destroy(error as Error);
        else send(response, 500, { error: toRpcError(error) });
      });
    });
    this.server = server;
    const socketPath = this.options.socketPath;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      if (socketPath === undefined) {
        server.listen(this.options.port ?? 0, this.options.host ?? "127.0.0.1", () => resolve());
        return;
      }
      // The socket is created owner-only (no window with the umask's permissions), then checked.
      const umask = process.umask(0o177);
      try {
        server.listen(socketPath, () => resolve());
      } finally {
        process.umask(umask);
      }
    });
    if (socketPath !== undefined) {
      chmodSync(socketPath, 0o600);
      return { url: `unix:${socketPath}`, port: undefined };
    }
    const address = server.address() as AddressInfo;
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
    this.ownOrigin = `http://${host}:${address.port}`;
    return { url: this.ownOrigin, port: address.port };
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const origin = request.headers.origin;
    if (origin !== undefined && origin !== this.ownOrigin) {
      send(response, 403, { error: { message: `cross-origin requests are refused (Origin ${origin})` } });
      return;
    }
    if (this.options.socketPath === undefined && !this.authorized(request)) {
      response.setHeader("www-authenticate", 'Bearer realm="v6agent mgmt"');
      send(response, 401, { error: { message: "the API needs its bearer token (Authorization: Bearer <token>)" } });
      return;
    }
    if (request.method === "POST" && !isJson(request.headers["content-type"])) {
      send(response, 415, { error: { message: "a POST body must be application/json" } });
      return;
    }
    await this.route(request, response);
  }

  private authorized(request: IncomingMessage): boolean {
    const header = request.headers.authorization ?? "";
    return header.startsWith("Bearer ") && sameSecret(this.options.token as string, header.slice(7));
  }

  private async route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://api");
    const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    if (request.method === "GET" && parts.length === 2 && parts[0] === "v1" && parts[1] === "agents") {
      send(response, 200, { agents: this.management.agents() });
      return;
    }
    if (request.method === "GET" && parts.length === 3 && parts[0] === "v1" && parts[1] === "agents") {
      const agent = this.management.agent(parts[2] as string);
      if (agent === undefined) send(response, 404, { error: { message: `no agent ${parts[2]}` } });
      else send(response, 200, agent);
      return;
    }
    if (request.method === "POST" && parts.length === 4 && parts[0] === "v1" && parts[1] === "agents" && parts[3] === "commands") {
      await this.command(parts[2] as string, request, response);
      return;
    }
    if (request.method === "GET" && parts.length === 2 && parts[0] === "v1" && parts[1] === "reports") {
      const query = {
        since: numberParam(url, "since") ?? 0,
        hostId: url.searchParams.get("hostId") ?? undefined,
        method: url.searchParams.get("method") ?? undefined,
        maxBytes: MAX_REPORTS_PAGE_BYTES,
      };
      const waitMs = Math.min(numberParam(url, "waitMs") ?? 0, 60_000);
      const reports = waitMs > 0 ? await this.management.reports.wait(query, waitMs) : this.management.reports.query(query);
      send(response, 200, { reports, last: this.management.reports.last });
      return;
    }
    send(response, 404, { error: { message: `no route ${request.method} ${url.pathname}` } });
  }

  private async command(hostId: string, request: IncomingMessage, response: ServerResponse): Promise<void> {
    let body: { method?: unknown; params?: unknown; id?: unknown; timeoutMs?: unknown };
    try {
      body = JSON.parse(await readBody(request)) as typeof body;
    } catch (error) {
      send(response, 400, { error: { message: `body: ${(error as Error).message}` } });
      return;
    }
    const method = body.method;
    if (typeof method !== "string" || !isMethodName(method) || METHODS[method].direction !== "server-to-agent") {
      send(response, 400, { error: { message: `method: ${JSON.stringify(method)} is not a server-to-agent method` } });
      return;
    }
    const id = typeof body.id === "string" || typeof body.id === "number" ? body.id : undefined;
    try {
      const timeoutMs = typeof body.timeoutMs === "number" ? body.timeoutMs : undefined;
      const result = await this.management.call(hostId, method as ServerMethod, body.params ?? {}, { id, timeoutMs });
      send(response, 200, { id, result });
    } catch (error) {
      // The agent's own JSON-RPC error is passed through unchanged; local refusals are mapped.
      const rpc = error instanceof RemoteError ? error.rpc : toRpcError(error);
      const status = error instanceof RemoteError ? 200 : error instanceof V6Error && error.code === "invalid_argument" ? 400 : 504;
      send(response, status, { id, error: rpc });
    }
  }
}

function isJson(contentType: string | undefined): boolean {
  return (contentType ?? "").split(";")[0]?.trim().toLowerCase() === "application/json";
}

function numberParam(url: URL, name: string): number | undefined {
  const text = url.searchParams.get(name);
  if (text === null) return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new Error(`larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Serialises first: a body that cannot be serialised must fail before the status line goes out. */
function send(response: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  response.writeHead(status, { "content-type": "application/json" }).end(text);
}

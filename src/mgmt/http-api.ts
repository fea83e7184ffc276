import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { isLoopbackHost } from "../channel/connection-options.js";
import { V6Error } from "../errors.js";
import { isMethodName, METHODS, RemoteError, type ServerMethod, toRpcError } from "../protocol/index.js";
import type { ManagementServer } from "./management-server.js";

/**
 * The reference server's small local HTTP API (labs, e2e tests, manual use). It has no
 * authentication, so it listens on loopback unless explicitly told otherwise.
 *
 *   GET  /v1/agents                         every agent seen, connected or not
 *   GET  /v1/agents/{hostId}                one agent (404 if never seen)
 *   POST /v1/agents/{hostId}/commands       {method, params, id?, timeoutMs?} → {id, result} | {id, error}
 *   GET  /v1/reports?since=&hostId=&method=&waitMs=   reports after `since`; waits up to waitMs for one
 */
export interface HttpApiOptions {
  host?: string;
  port?: number;
  /** Listen on a non-loopback address (the API is unauthenticated). */
  allowRemote?: boolean;
}

const MAX_BODY = 4 * 1024 * 1024;

export class ManagementHttpApi {
  private server: Server | undefined;

  constructor(
    private readonly management: ManagementServer,
    private readonly options: HttpApiOptions = {},
  ) {
    const host = options.host ?? "127.0.0.1";
    if (!isLoopbackHost(host) && options.allowRemote !== true) {
      throw new V6Error(
        "invalid_argument",
        `api: the HTTP API has no authentication; ${host} is not loopback (pass the explicit flag to allow it)`,
        {
          field: "api",
        },
      );
    }
  }

  async start(): Promise<{ url: string; port: number }> {
    const server = createServer((request, response) => {
      this.route(request, response).catch((error: unknown) => send(response, 500, { error: toRpcError(error) }));
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port ?? 0, this.options.host ?? "127.0.0.1", () => resolve());
    });
    const address = server.address() as AddressInfo;
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
    return { url: `http://${host}:${address.port}`, port: address.port };
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
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
        ...(url.searchParams.has("hostId") ? { hostId: url.searchParams.get("hostId") as string } : {}),
        ...(url.searchParams.has("method") ? { method: url.searchParams.get("method") as string } : {}),
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
      const options = {
        ...(id === undefined ? {} : { id }),
        ...(typeof body.timeoutMs === "number" ? { timeoutMs: body.timeoutMs } : {}),
      };
      const result = await this.management.call(hostId, method as ServerMethod, body.params ?? {}, options);
      send(response, 200, { id, result });
    } catch (error) {
      // The agent's own JSON-RPC error is passed through unchanged; local refusals are mapped.
      const rpc = error instanceof RemoteError ? error.rpc : toRpcError(error);
      const status = error instanceof RemoteError ? 200 : error instanceof V6Error && error.code === "invalid_argument" ? 400 : 504;
      send(response, status, { id, error: rpc });
    }
  }
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

function send(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { "content-type": "application/json" }).end(`${JSON.stringify(body)}\n`);
}

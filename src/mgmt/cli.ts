import { readFileSync } from "node:fs";
import { InvalidArgumentError } from "../errors.js";
import { createLogger } from "../log.js";
import { parseHostTokens } from "./agent-auth.js";
import { type HttpApiOptions, ManagementHttpApi } from "./http-api.js";
import { ManagementServer, type ManagementServerOptions } from "./management-server.js";

/** Options of `v6agent mgmt` as commander hands them over. */
export interface MgmtCommandOptions {
  listen: string;
  api: string;
  apiTokenFile?: string;
  cert?: string;
  key?: string;
  clientCa?: string;
  hostTokens?: string;
  labTokenFile?: string;
  insecureLoopback?: boolean;
  heartbeatMs?: string;
  maxConnections?: string;
  forgetAfter?: string;
  insecure?: boolean;
  allowRemoteApi?: boolean;
}

/** Parses `host:port`, `[v6]:port` or `:port`. */
export function parseListen(text: string, field: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (match === null || port > 65535)
    throw new InvalidArgumentError(field, `${JSON.stringify(text)} is not host:port (e.g. 127.0.0.1:8443 or [::1]:8443)`);
  return { host: match[1] ?? (match[2] || "127.0.0.1"), port };
}

/** A whole number of at least `min`. */
function parseCount(text: string, field: string, min: number, unit: string): number {
  if (!/^\d{1,9}$/.test(text) || Number(text) < min) {
    throw new InvalidArgumentError(field, `${JSON.stringify(text)} is not a whole number of ${unit}, at least ${min}`);
  }
  return Number(text);
}

function readFile(path: string | undefined, field: string): string | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new InvalidArgumentError(field, `cannot read ${path}: ${(error as Error).message}`);
  }
}

function lines(text: string | undefined): string[] | undefined {
  return text
    ?.split("\n")
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith("#"));
}

/** The HTTP API's options: a unix socket (owner-only) or TCP with its bearer token. */
function apiOptions(options: MgmtCommandOptions): HttpApiOptions {
  if (options.api.startsWith("unix:")) {
    const socketPath = options.api.slice(5);
    if (!socketPath.startsWith("/"))
      throw new InvalidArgumentError("--api", `${JSON.stringify(options.api)}: unix: needs an absolute path`);
    return { socketPath };
  }
  const api = parseListen(options.api, "--api");
  const token = lines(readFile(options.apiTokenFile, "--api-token-file"))?.[0];
  if (token === undefined) {
    throw new InvalidArgumentError(
      "--api-token-file",
      `the HTTP API on ${options.api} needs a token file (or listen on an owner-only unix socket: --api unix:/path)`,
    );
  }
  return { host: api.host, port: api.port, token, allowRemote: options.allowRemoteApi === true };
}

/** Agent authentication: mutual TLS, per-host tokens, lab tokens, or none on loopback when asked. */
function serverOptions(options: MgmtCommandOptions): ManagementServerOptions {
  const listen = parseListen(options.listen, "--listen");
  const cert = readFile(options.cert, "--cert");
  const key = readFile(options.key, "--key");
  const clientCa = readFile(options.clientCa, "--client-ca");
  if ((cert === undefined) !== (key === undefined)) throw new InvalidArgumentError("--cert", "--cert and --key go together");
  if (clientCa !== undefined && cert === undefined) throw new InvalidArgumentError("--client-ca", "mutual TLS needs --cert and --key");
  const hostTokensText = readFile(options.hostTokens, "--host-tokens");
  const labTokens = lines(readFile(options.labTokenFile, "--lab-token-file"));
  if (labTokens?.length === 0) throw new InvalidArgumentError("--lab-token-file", `${options.labTokenFile} holds no token`);
  const authenticated = clientCa !== undefined || hostTokensText !== undefined || labTokens !== undefined;
  if (!authenticated && options.insecureLoopback !== true) {
    throw new InvalidArgumentError(
      "--listen",
      "agents need authentication: --client-ca (mutual TLS) and/or --host-tokens (or --lab-token-file in a lab); --insecure-loopback accepts agents without credentials on a loopback --listen only",
    );
  }
  const result: ManagementServerOptions = {
    host: listen.host,
    port: listen.port,
    allowInsecure: options.insecure === true,
    unauthenticatedLoopback: !authenticated && options.insecureLoopback === true,
    tokens: labTokens,
    hostTokens: hostTokensText === undefined ? undefined : parseHostTokens(hostTokensText, options.hostTokens as string),
  };
  if (cert !== undefined && key !== undefined) result.tls = clientCa === undefined ? { cert, key } : { cert, key, ca: clientCa };
  if (options.heartbeatMs !== undefined)
    result.heartbeatIntervalMs = parseCount(options.heartbeatMs, "--heartbeat-ms", 100, "milliseconds");
  if (options.maxConnections !== undefined)
    result.maxConnections = parseCount(options.maxConnections, "--max-connections", 1, "connections");
  if (options.forgetAfter !== undefined) result.departedHostTtlMs = parseCount(options.forgetAfter, "--forget-after", 1, "seconds") * 1000;
  return result;
}

/** Runs the reference management server until SIGINT/SIGTERM. */
export async function runMgmt(options: MgmtCommandOptions): Promise<void> {
  const agentOptions = serverOptions(options);
  const httpOptions = apiOptions(options);
  const server = new ManagementServer({ ...agentOptions, logger: createLogger() });
  const httpApi = new ManagementHttpApi(server, httpOptions);
  const agents = await server.start();
  const endpoint = await httpApi.start();
  process.stdout.write(`${JSON.stringify({ agents: agents.url, api: endpoint.url })}\n`);
  await new Promise<void>((resolve) => {
    const done = () => resolve();
    process.once("SIGINT", done);
    process.once("SIGTERM", done);
  });
  await httpApi.stop();
  await server.stop();
}

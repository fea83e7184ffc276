import { readFileSync } from "node:fs";
import { InvalidArgumentError } from "../errors.js";
import { createLogger } from "../log.js";
import { ManagementHttpApi } from "./http-api.js";
import { ManagementServer, type ManagementServerOptions } from "./management-server.js";

/** Options of `v6agent mgmt` as commander hands them over. */
export interface MgmtCommandOptions {
  listen: string;
  api: string;
  cert?: string;
  key?: string;
  clientCa?: string;
  tokenFile?: string;
  heartbeatMs?: string;
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

/** The heartbeat interval asked of agents: agent.hello's schema takes 100 ms or more. */
function parseHeartbeatMs(text: string): number {
  if (!/^\d{1,9}$/.test(text) || Number(text) < 100) {
    throw new InvalidArgumentError("--heartbeat-ms", `${JSON.stringify(text)} is not a whole number of milliseconds, at least 100`);
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

/** Runs the reference management server until SIGINT/SIGTERM. */
export async function runMgmt(options: MgmtCommandOptions): Promise<void> {
  const listen = parseListen(options.listen, "--listen");
  const api = parseListen(options.api, "--api");
  const cert = readFile(options.cert, "--cert");
  const key = readFile(options.key, "--key");
  const clientCa = readFile(options.clientCa, "--client-ca");
  if ((cert === undefined) !== (key === undefined)) throw new InvalidArgumentError("--cert", "--cert and --key go together");
  const tokens = readFile(options.tokenFile, "--token-file")
    ?.split("\n")
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith("#"));
  const logger = createLogger();
  const serverOptions: ManagementServerOptions = { host: listen.host, port: listen.port, logger, allowInsecure: options.insecure === true };
  if (cert !== undefined && key !== undefined) serverOptions.tls = clientCa === undefined ? { cert, key } : { cert, key, ca: clientCa };
  if (tokens !== undefined) serverOptions.tokens = tokens;
  if (options.heartbeatMs !== undefined) serverOptions.heartbeatIntervalMs = parseHeartbeatMs(options.heartbeatMs);
  const server = new ManagementServer(serverOptions);
  const httpApi = new ManagementHttpApi(server, { host: api.host, port: api.port, allowRemote: options.allowRemoteApi === true });
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

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { ManagementHttpApi, ManagementServer } from "../../../src/mgmt/index.js";
import { RPC_ERRORS, SUBPROTOCOL } from "../../../src/protocol/index.js";
import { makeAgent, nextConnected, RecordingHandler, vmUuid } from "../../support/channel-harness.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const TOKEN = "api-token-for-tests-0123456789abcdef";
const AUTH = { authorization: `Bearer ${TOKEN}` };

async function agentOn(url: string, handler = new RecordingHandler()) {
  const { channel } = makeAgent({ servers: [url] }, handler);
  cleanups.push(() => channel.stop());
  const connected = nextConnected(channel);
  channel.start();
  await connected;
  return { channel, handler };
}

async function json(response: Response): Promise<{ status: number; body: Record<string, unknown> }> {
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function serverWithApi() {
  const server = new ManagementServer({ unauthenticatedLoopback: true });
  const { url } = await server.start();
  cleanups.push(() => server.stop());
  const api = new ManagementHttpApi(server, { token: TOKEN });
  const { url: base } = await api.start();
  cleanups.push(() => api.stop());
  return { server, url, base };
}

describe("reference server HTTP API", () => {
  it("lists agents, runs a command, passes agent errors through, and long-polls reports", async () => {
    const { url, base } = await serverWithApi();
    const { channel, handler } = await agentOn(url);

    const agents = await json(await fetch(`${base}/v1/agents`, { headers: AUTH }));
    expect(agents.status).toBe(200);
    expect((agents.body.agents as { hostId: string; connected: boolean }[]).map((agent) => [agent.hostId, agent.connected])).toEqual([
      ["host-1", true],
    ]);

    const post = (body: unknown) =>
      fetch(`${base}/v1/agents/host-1/commands`, {
        method: "POST",
        headers: { ...AUTH, "content-type": "application/json" },
        body: JSON.stringify(body),
      }).then(json);
    const done = await post({ method: "vm.stop", params: { uuid: vmUuid(1) }, id: "api-1" });
    expect(done).toEqual({ status: 200, body: { id: "api-1", result: { uuid: vmUuid(1), state: "stopped" } } });
    expect(handler.count("api-1")).toBe(1);

    const refused = await post({ method: "network.ensure", params: { networkId: "n", prefix: "2001:db8::/48" } });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatchObject({ code: RPC_ERRORS.invalidParams, data: { field: "params.prefix" } });
    expect(await post({ method: "agent.hello", params: {} })).toMatchObject({ status: 400 });

    const last = (await json(await fetch(`${base}/v1/reports`, { headers: AUTH }))).body.last as number;
    const waiting = fetch(`${base}/v1/reports?since=${last}&method=vif.report&waitMs=10000`, { headers: AUTH }).then(json);
    await channel.report({
      vmUuid: vmUuid(1),
      mac: "52:54:00:00:00:01",
      duidLL: "00:03:00:01:52:54:00:00:00:01",
      linkLocal: "fe80::5054:ff:fe00:1",
      state: "protected",
    });
    const reports = (await waiting).body.reports as { hostId: string; method: string; params: { mac: string } }[];
    expect(reports.map((report) => [report.hostId, report.method, report.params.mac])).toEqual([
      ["host-1", "vif.report", "52:54:00:00:00:01"],
    ]);
    expect((await fetch(`${base}/v1/agents/nobody`, { headers: AUTH })).status).toBe(404);
  });

  // Issue 17, finding 3: any local user (or a web page) could send commands.
  it("refuses requests without the token, non-JSON posts and foreign origins, running nothing", async () => {
    const { url, base } = await serverWithApi();
    const { handler } = await agentOn(url);
    const command = JSON.stringify({ method: "vm.stop", params: { uuid: vmUuid(2) }, id: "attack" });
    const target = `${base}/v1/agents/host-1/commands`;
    const attempts = [
      [401, { "content-type": "application/json" }],
      [401, { authorization: "Bearer wrong-token", "content-type": "application/json" }],
      [415, { ...AUTH, "content-type": "text/plain" }],
      [403, { ...AUTH, "content-type": "application/json", origin: "http://evil.example" }],
      [403, { "content-type": "text/plain", origin: "null" }],
    ] as const;
    for (const [status, headers] of attempts) {
      const response = await json(await fetch(target, { method: "POST", headers, body: command }));
      expect(response.status, JSON.stringify(headers)).toBe(status);
      expect(response.body.error).toMatchObject({ message: expect.any(String) });
    }
    expect((await fetch(`${base}/v1/agents`)).status).toBe(401);
    expect((await fetch(`${base}/v1/reports`, { headers: { ...AUTH, origin: "http://evil.example" } })).status).toBe(403);
    expect(handler.count("attack")).toBe(0);
  });

  it("serves an owner-only unix socket without a token", async () => {
    const dir = mkdtempSync(join(tmpdir(), "v6agent-api-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const server = new ManagementServer({ unauthenticatedLoopback: true });
    await server.start();
    cleanups.push(() => server.stop());
    const socketPath = join(dir, "api.sock");
    const api = new ManagementHttpApi(server, { socketPath });
    expect((await api.start()).url).toBe(`unix:${socketPath}`);
    cleanups.push(() => api.stop());
    expect(statSync(socketPath).mode & 0o777).toBe(0o600);
    const body = await new Promise<string>((resolve, reject) => {
      const request = httpRequest({ socketPath, path: "/v1/agents" }, (response) => {
        let text = "";
        response.on("data", (chunk) => {
          text += String(chunk);
        });
        response.on("end", () => resolve(`${response.statusCode} ${text}`));
      });
      request.on("error", reject);
      request.end();
    });
    expect(body).toBe('200 {"agents":[]}\n');
  });

  it("refuses to serve TCP without a token, or a non-loopback address without the flag", () => {
    const server = new ManagementServer({ unauthenticatedLoopback: true });
    expect(() => new ManagementHttpApi(server)).toThrow(/api: .*needs a token/);
    expect(() => new ManagementHttpApi(server, { host: "192.0.2.1", token: TOKEN })).toThrow(/api: .*not loopback/);
  });

  // Issue 17, finding 4: a failure while writing a body after writeHead(200) (a reports page too
  // big to serialise) answered with a second writeHead: ERR_HTTP_HEADERS_SENT killed the server.
  it("a body that cannot be serialised is a 500, not a crash, and the API keeps serving", async () => {
    const unserialisable = {
      agents: () => [
        {
          toJSON: () => {
            throw new RangeError("Invalid string length");
          },
        },
      ],
      agent: () => undefined,
    } as unknown as ManagementServer;
    const api = new ManagementHttpApi(unserialisable, { token: TOKEN });
    const { url: base } = await api.start();
    cleanups.push(() => api.stop());
    const failed = await json(await fetch(`${base}/v1/agents`, { headers: AUTH }));
    expect(failed.status).toBe(500);
    expect(failed.body.error).toMatchObject({ message: expect.stringMatching(/Invalid string length/) });
    expect((await fetch(`${base}/v1/agents/x`, { headers: AUTH })).status).toBe(404);
  });
});

const CLI = new URL("../../../dist/src/cli.js", import.meta.url).pathname;
const missing = existsSync(CLI) ? undefined : "needs `npm run build` (dist/src/cli.js)";
if (missing && process.env.CI) throw new Error(`CI must run every test, but this one ${missing}`);

function startMgmt(args: string[]): ChildProcess {
  const child = spawn(process.execPath, [CLI, "mgmt", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  cleanups.push(() => {
    child.kill("SIGKILL");
  });
  return child;
}

async function failure(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = startMgmt(args);
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr += String(chunk);
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  return { code, stderr };
}

function apiTokenFile(): string {
  const dir = mkdtempSync(join(tmpdir(), "v6agent-mgmt-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "api-token");
  writeFileSync(path, `${TOKEN}\n`, { mode: 0o600 });
  return path;
}

describe.skipIf(missing)("v6agent mgmt", () => {
  async function started(): Promise<{ child: ChildProcess; agents: string; api: string }> {
    const child = startMgmt(["--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--api-token-file", apiTokenFile(), "--insecure-loopback"]);
    const first = await new Promise<string>((resolve) =>
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).once("line", resolve),
    );
    return { child, ...(JSON.parse(first) as { agents: string; api: string }) };
  }

  it("starts, prints its endpoints, serves an agent and stops on SIGTERM", async () => {
    const { child, agents, api } = await started();
    expect(agents).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/v6agent$/);
    await agentOn(agents);
    const result = await fetch(`${api}/v1/agents/host-1/commands`, {
      method: "POST",
      headers: { ...AUTH, "content-type": "application/json" },
      body: JSON.stringify({ method: "vm.list", params: {} }),
    }).then(json);
    expect(result).toMatchObject({ status: 200, body: { result: { vms: [] } } });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  // Issue 17, finding 1, against the real process: one frame killed it, even before hello.
  it("survives a frame nested thousands deep before hello and answers it", async () => {
    const { child, agents } = await started();
    const socket = new WebSocket(agents, SUBPROTOCOL);
    cleanups.push(() => socket.terminate());
    const answers: { id: unknown; error?: { code: number }; result?: unknown }[] = [];
    socket.on("message", (data) => answers.push(JSON.parse(String(data))));
    await new Promise((resolve) => socket.once("open", resolve));
    const deep = `${"[".repeat(8000)}${"]".repeat(8000)}`;
    socket.send(`{"jsonrpc":"2.0","id":${deep},"method":"agent.hello","params":{}}`);
    socket.send(`{"jsonrpc":"2.0","id":"m","method":${deep}}`);
    socket.send(`{"jsonrpc":${deep},"id":"j","method":"agent.hello"}`);
    socket.send(JSON.stringify({ jsonrpc: "2.0", id: "ping", method: "agent.ping", params: {} }));
    await new Promise<void>((resolve) => {
      const check = () => (answers.length >= 4 ? resolve() : setTimeout(check, 20));
      check();
    });
    expect(answers.slice(0, 3).map((answer) => [answer.id, answer.error?.code])).toEqual([
      [null, RPC_ERRORS.invalidRequest],
      ["m", RPC_ERRORS.invalidRequest],
      ["j", RPC_ERRORS.invalidRequest],
    ]);
    expect(answers[3]).toMatchObject({ id: "ping", error: { code: RPC_ERRORS.invalidRequest } });
    expect(child.exitCode).toBeNull();
    expect(socket.readyState).toBe(WebSocket.OPEN);
  });

  // Issue 17, finding 3: with no auth flags it accepted agents with no credentials at all.
  it("refuses to start without agent authentication unless told loopback-only, and never off loopback", async () => {
    const token = ["--api-token-file", apiTokenFile()];
    const bare = await failure(["--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", ...token]);
    expect(bare.code).toBe(1);
    expect(bare.stderr).toMatch(/agents need authentication: --client-ca .* --insecure-loopback/);
    const remote = await failure(["--listen", "0.0.0.0:0", "--api", "127.0.0.1:0", ...token, "--insecure-loopback", "--insecure"]);
    expect(remote.code).toBe(1);
    expect(remote.stderr).toMatch(/without credentials are accepted on loopback only/);
    const noApiToken = await failure(["--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--insecure-loopback"]);
    expect(noApiToken.code).toBe(1);
    expect(noApiToken.stderr).toMatch(/--api-token-file: .*needs a token file/);
  });

  it("refuses a malformed --listen naming the flag", async () => {
    const { code, stderr } = await failure(["--listen", "nowhere"]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^v6agent: --listen: "nowhere" is not host:port/);
  });
});

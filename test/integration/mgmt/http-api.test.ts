import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { ManagementHttpApi, ManagementServer } from "../../../src/mgmt/index.js";
import { RPC_ERRORS } from "../../../src/protocol/index.js";
import { makeAgent, nextConnected, RecordingHandler, vmUuid } from "../../support/channel-harness.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

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

describe("reference server HTTP API", () => {
  it("lists agents, runs a command, passes agent errors through, and long-polls reports", async () => {
    const server = new ManagementServer();
    const { url } = await server.start();
    cleanups.push(() => server.stop());
    const api = new ManagementHttpApi(server);
    const { url: base } = await api.start();
    cleanups.push(() => api.stop());
    const { channel, handler } = await agentOn(url);

    const agents = await json(await fetch(`${base}/v1/agents`));
    expect(agents.status).toBe(200);
    expect((agents.body.agents as { hostId: string; connected: boolean }[]).map((agent) => [agent.hostId, agent.connected])).toEqual([
      ["host-1", true],
    ]);

    const post = (body: unknown) =>
      fetch(`${base}/v1/agents/host-1/commands`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }).then(json);
    const done = await post({ method: "vm.stop", params: { uuid: vmUuid(1) }, id: "api-1" });
    expect(done).toEqual({ status: 200, body: { id: "api-1", result: { uuid: vmUuid(1), state: "stopped" } } });
    expect(handler.count("api-1")).toBe(1);

    const refused = await post({ method: "network.ensure", params: { networkId: "n", prefix: "2001:db8::/48" } });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatchObject({ code: RPC_ERRORS.invalidParams, data: { field: "params.prefix" } });
    expect(await post({ method: "agent.hello", params: {} })).toMatchObject({ status: 400 });

    const last = (await json(await fetch(`${base}/v1/reports`))).body.last as number;
    const waiting = fetch(`${base}/v1/reports?since=${last}&method=vif.report&waitMs=10000`).then(json);
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
    expect((await fetch(`${base}/v1/agents/nobody`)).status).toBe(404);
  });

  it("refuses to serve the unauthenticated API on a non-loopback address without the flag", () => {
    expect(() => new ManagementHttpApi(new ManagementServer(), { host: "192.0.2.1" })).toThrow(/api: .*not loopback/);
  });
});

const CLI = new URL("../../../dist/src/cli.js", import.meta.url).pathname;
const missing = existsSync(CLI) ? undefined : "needs `npm run build` (dist/src/cli.js)";
if (missing && process.env.CI) throw new Error(`CI must run every test, but this one ${missing}`);

describe.skipIf(missing)("v6agent mgmt", () => {
  it("starts, prints its endpoints, serves an agent and stops on SIGTERM", async () => {
    const child = spawn(process.execPath, [CLI, "mgmt", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    cleanups.push(() => {
      child.kill("SIGKILL");
    });
    const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout }).once("line", resolve));
    const endpoints = JSON.parse(first) as { agents: string; api: string };
    expect(endpoints.agents).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/v6agent$/);
    await agentOn(endpoints.agents);
    const result = await fetch(`${endpoints.api}/v1/agents/host-1/commands`, {
      method: "POST",
      body: JSON.stringify({ method: "vm.list", params: {} }),
    }).then(json);
    expect(result).toMatchObject({ status: 200, body: { result: { vms: [] } } });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("refuses a malformed --listen naming the flag", async () => {
    const child = spawn(process.execPath, [CLI, "mgmt", "--listen", "nowhere"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => {
      stderr += String(chunk);
    });
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code).toBe(1);
    expect(stderr).toMatch(/^v6agent: --listen: "nowhere" is not host:port/);
  });
});

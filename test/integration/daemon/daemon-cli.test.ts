import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NetnsDom0, type RunningXapiSimulator, startXapiSimulator } from "../../../src/lab/xapi-sim/index.js";
import { type DaemonProcess, startAgentDaemon, startCli, waitFor, writeConfig } from "../../support/agent-daemon.js";
import { uniqueSuffix } from "../../support/names.js";
import { Netns } from "../../support/netns.js";
import { skipReason } from "../../support/requirements.js";

/**
 * The acceptance for the daemon, with real processes: `v6agent run` with a broken config
 * names the bad field and exits non-zero; with a good one (XenServer simulator, nft in a dom0
 * namespace) it registers with `v6agent mgmt` and shows up in its HTTP API's agent list.
 */
/** A TCP port on loopback that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const skip = skipReason({ root: true, commands: ["ip", "nft", "sysctl"] });

describe.skipIf(skip !== undefined)("v6agent run ↔ v6agent mgmt (processes)", () => {
  let workDir: string;
  let dom0: Netns | undefined;
  let sim: RunningXapiSimulator | undefined;
  const processes: DaemonProcess[] = [];
  const token = randomBytes(16).toString("hex");
  let passwordFile: string;
  const base = () => ({
    hostId: `cli-${uniqueSuffix()}`,
    management: { servers: ["ws://127.0.0.1:1/agent"], token },
    hypervisor: { kind: "xenserver", xapi: { url: sim?.url, passwordFile } },
    firewall: { backend: "nft" },
    netns: dom0?.name,
    stateDir: join(workDir, `state-${uniqueSuffix()}`),
    logLevel: "info",
  });

  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), "v6-daemon-cli-"));
    passwordFile = join(workDir, "xapi-password");
    writeFileSync(passwordFile, "xenroot\n", { mode: 0o600 });
    dom0 = await Netns.create("v6dc");
    sim = await startXapiSimulator({ asyncDelayMs: 0, dom0: new NetnsDom0({ dom0: dom0.name }) });
  });

  afterAll(async () => {
    for (const child of processes) await child.stop();
    await sim?.close();
    await dom0?.destroy();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  for (const [field, broken] of [
    ["firewall.backend", { firewall: { backend: "iptables" } }],
    ["management.servers[0]", { management: { servers: ["http://127.0.0.1:1/"], token } }],
    ["hypervisor.xapi.passwordFile", { hypervisor: { kind: "xenserver", xapi: { url: "https://xs.example" } } }],
    ["hypervisr", { hypervisr: {} }],
  ] as const) {
    it(`refuses a config with a bad ${field}, naming it, and exits non-zero`, async () => {
      const path = writeConfig(workDir, { ...base(), ...broken }, `bad-${uniqueSuffix()}.yaml`);
      const child = startAgentDaemon(path);
      processes.push(child);
      const code = await child.exited;
      expect(code).not.toBe(0);
      expect(typeof code).toBe("number");
      expect(child.output()).toContain(field);
    });
  }

  it("registers with v6agent mgmt, is listed by GET /v1/agents, and serves its metrics when asked to", async () => {
    const hostId = `cli-${uniqueSuffix()}`;
    const tokenFile = join(workDir, "host-tokens");
    writeFileSync(tokenFile, `sha256:${createHash("sha256").update(token).digest("hex")} ${hostId}\n`, { mode: 0o600 });
    const apiToken = randomBytes(16).toString("hex");
    const apiTokenFile = join(workDir, "api-token");
    writeFileSync(apiTokenFile, `${apiToken}\n`, { mode: 0o600 });
    const mgmt = startCli([
      "mgmt",
      "--listen",
      "127.0.0.1:0",
      "--api",
      "127.0.0.1:0",
      "--api-token-file",
      apiTokenFile,
      "--host-tokens",
      tokenFile,
    ]);
    processes.push(mgmt);
    const endpoints = await waitFor("mgmt's endpoints", () => {
      for (const line of mgmt.output().split("\n")) {
        try {
          const parsed = JSON.parse(line) as { agents?: string; api?: string };
          if (parsed.agents !== undefined && parsed.api !== undefined) return { agents: parsed.agents, api: parsed.api };
        } catch {
          // a log line in progress
        }
      }
      return undefined;
    });
    const metricsPort = await freePort();
    const config = {
      ...base(),
      hostId,
      management: { servers: [endpoints.agents], token },
      metrics: { listen: `127.0.0.1:${metricsPort}` },
    };
    const agent = startAgentDaemon(writeConfig(workDir, config, "good.yaml"));
    processes.push(agent);
    const listed = await waitFor("the agent in /v1/agents", async () => {
      if (agent.child.exitCode !== null) throw new Error(`agent exited:\n${agent.output()}`);
      const response = await fetch(new URL("/v1/agents", endpoints.api), { headers: { authorization: `Bearer ${apiToken}` } });
      const body = (await response.json()) as { agents: { hostId: string; connected: boolean; hypervisor: string }[] };
      return body.agents.find((entry) => entry.hostId === config.hostId && entry.connected);
    });
    expect(listed).toMatchObject({ hostId: config.hostId, connected: true, hypervisor: "xenserver" });
    // prom-client is loaded only when metrics are configured: the endpoint must still work.
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^v6agent_management_connected 1$/m);
    expect(metrics).toMatch(/^v6agent_ports_protected 0$/m);
    const stopped = await agent.stop(25_000);
    expect(stopped, agent.output().split("\n").slice(-8).join("\n")).toBe(0);
  });
});

// Reference server benchmark (issue 17): 1,000 agents of distinct identities (per-host tokens)
// register with a real `v6agent mgmt` process and heartbeat; prints the server's RSS (idle as
// the baseline, after the registrations, while heartbeating) and hello latencies (all at once,
// and one at a time on a server holding the other 999).
//
//   npm run build && node dist/bench/mgmt-server.js
//   BENCH_AGENTS=1000 BENCH_VIFS=20 BENCH_SECONDS=20 node dist/bench/mgmt-server.js
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { SUBPROTOCOL } from "../src/protocol/index.js";

const AGENTS = Number(process.env.BENCH_AGENTS ?? 1000);
const VIFS = Number(process.env.BENCH_VIFS ?? 20);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const HEARTBEAT_MS = 1000;
const CLI = join(fileURLToPath(new URL(".", import.meta.url)), "..", "src", "cli.js");

type Answer = { result?: unknown; error?: { message: string } };

interface Agent {
  hostId: string;
  token: string;
  socket?: WebSocket;
  pending: Map<string, { socket: WebSocket; resolve: (message: Answer) => void }>;
  next: number;
}

function mac(host: number, vif: number): string {
  const bytes = [0x52, 0x54, (host >> 8) & 0xff, host & 0xff, (vif >> 8) & 0xff, vif & 0xff];
  return bytes.map((byte) => byte.toString(16).padStart(2, "0")).join(":");
}

function helloParams(index: number, hostId: string) {
  const vifs = Array.from({ length: VIFS }, (_, vif) => {
    const address = mac(index, vif);
    return {
      vmUuid: `00000000-0000-4000-8000-${index.toString(16).padStart(6, "0")}${vif.toString(16).padStart(6, "0")}`,
      mac: address,
      duidLL: `00:03:00:01:${address}`,
      linkLocal: "fe80::5054:ff:fe00:1",
      device: `v6${address.replaceAll(":", "").slice(0, 12)}`,
      bridge: "v6br-bench",
      state: "protected",
    };
  });
  return {
    hostId,
    hostname: `${hostId}.bench`,
    hypervisor: "kvm",
    versions: { agent: "bench", hypervisor: "none" },
    capabilities: ["nic.plug", "state.sync"],
    inventory: { networks: [{ networkId: "n1", prefix: "2001:db8:1::/64" }], vifs },
  };
}

function request(agent: Agent, method: string, params: unknown): Promise<Answer> {
  const id = `b${++agent.next}`;
  const socket = agent.socket as WebSocket;
  if (socket.readyState !== WebSocket.OPEN) return Promise.resolve({ error: { message: "not connected" } });
  return new Promise((resolve) => {
    agent.pending.set(id, { socket, resolve });
    socket.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
  });
}

/** Connects and says hello; resolves with [connect start → answer, hello sent → answer] in ms. */
async function register(agent: Agent, index: number, url: string): Promise<[number, number]> {
  const started = performance.now();
  const socket = new WebSocket(url, SUBPROTOCOL, { headers: { authorization: `Bearer ${agent.token}` }, perMessageDeflate: false });
  agent.socket = socket;
  socket.on("message", (data) => {
    const message = JSON.parse(String(data)) as { id?: string; method?: string; result?: unknown; error?: { message: string } };
    if (message.method !== undefined || message.id === undefined) return;
    agent.pending.get(message.id)?.resolve(message);
    agent.pending.delete(message.id);
  });
  socket.on("close", () => {
    for (const [id, waiting] of agent.pending) {
      if (waiting.socket !== socket) continue;
      agent.pending.delete(id);
      waiting.resolve({ error: { message: "connection closed" } });
    }
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  const sent = performance.now();
  const answer = await request(agent, "agent.hello", helloParams(index, agent.hostId));
  if (answer.error !== undefined) throw new Error(`hello of ${agent.hostId} refused: ${answer.error.message}`);
  const done = performance.now();
  return [done - started, done - sent];
}

function rssOf(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(match?.[1]) * 1024;
}

function percentiles(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
  return `p50 ${at(50).toFixed(1)} ms   p99 ${at(99).toFixed(1)} ms   max ${at(100).toFixed(1)} ms`;
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "v6agent-mgmt-bench-"));
  let server: ChildProcess | undefined;
  try {
    const agents: Agent[] = Array.from({ length: AGENTS }, (_, index) => ({
      hostId: `bench-host-${index}`,
      token: randomBytes(32).toString("hex"),
      pending: new Map(),
      next: 0,
    }));
    const tokenLines = agents.map((agent) => `sha256:${createHash("sha256").update(agent.token).digest("hex")} ${agent.hostId}`);
    writeFileSync(join(dir, "host-tokens"), `${tokenLines.join("\n")}\n`, { mode: 0o600 });
    writeFileSync(join(dir, "api-token"), `${randomBytes(16).toString("hex")}\n`, { mode: 0o600 });
    const args = [CLI, "mgmt", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--api-token-file", join(dir, "api-token")];
    args.push("--host-tokens", join(dir, "host-tokens"), "--heartbeat-ms", String(HEARTBEAT_MS));
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "ignore"] });
    server = child;
    const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout }).once("line", resolve));
    const url = (JSON.parse(first) as { agents: string }).agents;
    await sleep(1000);
    const pid = child.pid as number;
    const idle = rssOf(pid);
    console.log(`v6agent mgmt: ${AGENTS} agents with per-host tokens, ${VIFS} VIFs in each inventory, heartbeat every ${HEARTBEAT_MS} ms`);
    console.log(`server RSS idle (baseline, no agent)       ${mib(idle)}`);

    // 1. Every agent registers at once.
    const burstStarted = performance.now();
    const burst = await Promise.all(agents.map((agent, index) => register(agent, index, url)));
    const burstSeconds = (performance.now() - burstStarted) / 1000;
    const registered = rssOf(pid);
    console.log(`${AGENTS} hellos at once: all registered in ${burstSeconds.toFixed(2)} s`);
    console.log(`  connect → hello answer                     ${percentiles(burst.map(([total]) => total))}`);
    console.log(`  hello sent → answer                        ${percentiles(burst.map(([, rtt]) => rtt))}`);
    console.log(`server RSS after ${AGENTS} hellos                ${mib(registered)}`);

    // 2. Everyone heartbeats; the server's RSS is sampled throughout.
    const beats: number[] = [];
    let peak = registered;
    let running = true;
    const heartbeats = agents.map(async (agent, index) => {
      await sleep((index / AGENTS) * HEARTBEAT_MS);
      while (running) {
        const t0 = performance.now();
        const vifs = Array.from({ length: VIFS }, (_, vif) => ({ mac: mac(index, vif), state: "protected" }));
        await request(agent, "agent.heartbeat", { vms: [], vifs });
        beats.push(performance.now() - t0);
        await sleep(HEARTBEAT_MS);
      }
    });
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssOf(pid));
    }, 250);
    await sleep(SECONDS * 1000);
    const heartbeating = rssOf(pid);
    console.log(`${beats.length} heartbeats in ${SECONDS} s                ${percentiles(beats)}`);
    console.log(`server RSS heartbeating: after ${SECONDS} s ${mib(heartbeating)}, peak ${mib(peak)}`);

    // 3. Agents reconnecting one at a time while the other 999 heartbeat.
    const single: number[] = [];
    for (let index = 0; index < 200; index++) {
      const agent = agents[index] as Agent;
      agent.socket?.close();
      await sleep(5);
      single.push((await register(agent, index, url))[0]);
    }
    console.log(`200 reconnects one at a time, connect → hello answer ${percentiles(single)}`);
    running = false;
    clearInterval(sampler);
    await Promise.all(heartbeats);
    console.log(`server RSS at the end                      ${mib(rssOf(pid))} (peak ${mib(Math.max(peak, rssOf(pid)))})`);
    for (const agent of agents) agent.socket?.terminate();
  } finally {
    server?.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();

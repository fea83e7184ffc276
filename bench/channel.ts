// Channel benchmark (issue 5): no-op round trips with 1 and 100 commands in flight, the agent's
// RSS idle and under load, and the time 1,000 agents take to come back after the reference
// server restarts. The agent and the fleet run in their own processes (this file, forked with a
// role argument) so their memory and CPU are measured apart from the server's.
//
//   npm run build && node dist/bench/channel.js
import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { AgentChannel } from "../src/channel/index.js";
import type { ManagementServer } from "../src/mgmt/index.js";

// Each role imports only what it runs, as `v6agent run` does: the agent process loads the
// channel, never the management server, and tunes V8 for a small RSS from the start
// (src/daemon/v8-memory.ts, done by `v6agent run` before it loads its modules).

const HERE = fileURLToPath(import.meta.url);
const HOST = "bench-agent";

type ChildMessage = { type: "rss"; rss: number; heapUsed: number } | { type: "started" };

function helloFor(hostId: string) {
  return async () => ({
    hostId,
    hostname: `${hostId}.bench`,
    hypervisor: "kvm" as const,
    versions: { agent: "bench", hypervisor: "none" },
    capabilities: [],
    inventory: { networks: [], vifs: [] },
  });
}

/** Child role: one agent with a persisted outbox and a no-op handler; answers RSS queries. */
async function runAgent(url: string, outboxPath: string): Promise<void> {
  (await import("../src/daemon/v8-memory.js")).tuneV8ForDaemon();
  const { AgentChannel } = await import("../src/channel/index.js");
  const channel = new AgentChannel({
    servers: [url],
    outboxPath,
    hello: helloFor(HOST),
    handle: async () => ({ vms: [] }),
    limits: { maxConcurrentCommands: 128, maxQueuedCommands: 1024 },
  });
  channel.start();
  process.on("message", (message: { type: string }) => {
    if (message.type === "rss") {
      // With --expose-gc (BENCH_AGENT_NODE_ARGS), collect first so garbage is not counted as use.
      (globalThis as { gc?: () => void }).gc?.();
      const usage = process.memoryUsage();
      process.send?.({ type: "rss", rss: usage.rss, heapUsed: usage.heapUsed } satisfies ChildMessage);
    }
    if (message.type === "stop") void channel.stop().then(() => process.exit(0));
  });
}

/** Child role: `count` agents in one process, reconnecting with the default backoff. */
async function runFleet(url: string, count: number): Promise<void> {
  const { AgentChannel } = await import("../src/channel/index.js");
  const channels: AgentChannel[] = Array.from({ length: count }, (_, index) => {
    const channel = new AgentChannel({ servers: [url], hello: helloFor(`fleet-${index}`), handle: async () => ({ vms: [] }) });
    channel.start();
    return channel;
  });
  process.send?.({ type: "started" } satisfies ChildMessage);
  process.on("message", (message: { type: string }) => {
    if (message.type === "stop") void Promise.all(channels.map((channel) => channel.stop())).then(() => process.exit(0));
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function roundTrips(server: ManagementServer, total: number, inFlight: number, label: string): Promise<void> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < total) {
      next += 1;
      const t0 = performance.now();
      await server.call(HOST, "vm.list", {});
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  console.log(
    `${label.padEnd(28)} ${Math.round(total / seconds)
      .toString()
      .padStart(7)} round trips/s   p50 ${percentile(latencies, 50).toFixed(3)} ms   p99 ${percentile(latencies, 99).toFixed(3)} ms`,
  );
}

function ask<T extends ChildMessage["type"]>(child: ReturnType<typeof fork>, type: T): Promise<Extract<ChildMessage, { type: T }>> {
  return new Promise((resolve) => {
    const onMessage = (message: ChildMessage) => {
      if (message.type !== type) return;
      child.off("message", onMessage);
      resolve(message as Extract<ChildMessage, { type: T }>);
    };
    child.on("message", onMessage);
    if (type === "rss") child.send({ type: "rss" });
  });
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

async function main(): Promise<void> {
  const { ManagementServer } = await import("../src/mgmt/index.js");
  const dir = mkdtempSync(join(tmpdir(), "v6agent-bench-"));
  try {
    // 1. Latency and throughput of a no-op command, agent in its own process with a persisted outbox.
    const server = new ManagementServer({ unauthenticatedLoopback: true });
    const { url } = await server.start();
    // BENCH_AGENT_NODE_ARGS, e.g. "--max-semi-space-size=1", shows what V8 heap flags buy.
    const agentArgs = (process.env.BENCH_AGENT_NODE_ARGS ?? "").split(" ").filter(Boolean);
    const agent = fork(HERE, ["agent", url, join(dir, "outbox.jsonl")], { execArgv: agentArgs });
    await server.waitForAgent(HOST);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const idle = (await ask(agent, "rss")).rss;
    await roundTrips(server, 2000, 1, "warm-up");
    await roundTrips(server, 10_000, 1, "no-op, 1 in flight");
    let loadedPeak = 0;
    const sampler = setInterval(() => {
      void ask(agent, "rss").then((message) => {
        loadedPeak = Math.max(loadedPeak, message.rss);
      });
    }, 100);
    await roundTrips(server, 50_000, 100, "no-op, 100 in flight");
    clearInterval(sampler);
    loadedPeak = Math.max(loadedPeak, (await ask(agent, "rss")).rss);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const settledUsage = await ask(agent, "rss");
    const settled = settledUsage.rss;
    console.log(
      `agent RSS${agentArgs.length > 0 ? ` (node ${agentArgs.join(" ")})` : ""}: idle after connect ${mib(idle)}, under load (peak) ${mib(loadedPeak)}, idle after load ${mib(settled)} (V8 heap in use ${mib(settledUsage.heapUsed)}: the rest is heap V8 keeps reserved)`,
    );
    agent.send({ type: "stop" });
    await server.stop();

    // 2. 1,000 agents reconnecting after a server restart (1 s of downtime, default backoff).
    const fleetSize = 1000;
    const first = new ManagementServer({ unauthenticatedLoopback: true, silenceTimeoutMs: 120_000 });
    const { port, url: fleetUrl } = await first.start();
    let connected = 0;
    first.on("agent", () => {
      connected += 1;
    });
    const fleet = fork(HERE, ["fleet", fleetUrl, String(fleetSize)]);
    await ask(fleet, "started");
    const t0 = performance.now();
    while (connected < fleetSize) await new Promise((resolve) => setTimeout(resolve, 20));
    console.log(`${fleetSize} agents first connection: ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    await first.stop();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const second = new ManagementServer({ unauthenticatedLoopback: true, port, silenceTimeoutMs: 120_000 });
    let back = 0;
    second.on("agent", () => {
      back += 1;
    });
    await second.start();
    const restarted = performance.now();
    while (back < fleetSize) await new Promise((resolve) => setTimeout(resolve, 20));
    const allBack = (performance.now() - restarted) / 1000;
    console.log(
      `${fleetSize} agents back after the server restart: ${allBack.toFixed(2)} s (server down 1 s; backoff 0.5 s doubling, cap 30 s, jitter)`,
    );
    fleet.send({ type: "stop" });
    await second.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const [role, url, extra] = process.argv.slice(2);
if (role === "agent") await runAgent(url as string, extra as string);
else if (role === "fleet") await runFleet(url as string, Number(extra));
else await main();

/**
 * The agent daemon (`v6agent run`, a real child process) on a simulated XenServer host: XAPI
 * simulator, dom0 made of real veths and bridges in a network namespace (NetnsDom0), nft backend
 * in that namespace, a ManagementServer in this process.
 *
 * Prints: nic.plug → result (rules active: they are installed before the result) and
 * nic.plug → vif.report received, with 1 and with 1,000 ports on the host; startup (spawn →
 * converged → hello) with 0 and with 1,000 ports; the daemon's RSS with 1,000 ports and after a
 * restart with them.
 *
 * Filling the host one nic.plug at a time would measure nothing new and take most of an hour
 * (every plug also creates a veth in dom0), so the other VMs are made the way a host that already
 * runs them looks: the bench stops the daemon, creates and starts the VMs with their VIFs in the
 * simulator (dom0 gets their real veths), and adds their NICs to the daemon's state file through
 * the daemon's own StateStore and parser, as if earlier nic.plugs had recorded them. The daemon
 * then protects all of them in its startup reconcile (measured), and the measured plugs at full
 * load go through the daemon as before.
 *
 *   npm run build && node dist/bench/agent.js [ports]
 *
 * BENCH_DAEMON_NODE_OPTIONS is passed to the daemon as NODE_OPTIONS (e.g. `--heapsnapshot-signal=SIGUSR2`).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Mac } from "../src/addressing/index.js";
import { type DesiredState, parseDesiredState, SCHEMA_VERSION, withNic } from "../src/agent/desired-state.js";
import { StateStore } from "../src/agent/state-store.js";
import { createFirewall } from "../src/firewall/index.js";
import { createLogger } from "../src/log.js";
import { ManagementServer } from "../src/mgmt/index.js";
import type { VifReport } from "../src/protocol/index.js";
import { type DaemonProcess, startAgentDaemon, writeConfig } from "../test/support/agent-daemon.js";
import { uniqueSuffix } from "../test/support/names.js";
import { Netns } from "../test/support/netns.js";
import { NetnsDom0, startXapiSimulator } from "../test/support/xapi-sim/index.js";

const PORTS = Number(process.argv[2] ?? 1000);
const SAMPLES = 20;
const CONCURRENCY = 8;
/** How long the daemon idles before a second RSS sample (V8's memory reducer acts after ~8 s of low allocation). */
const SETTLE_MS = 30_000;

function mac(vm: number, nic: number): Mac {
  return `52:54:00:${(vm >> 8).toString(16).padStart(2, "0")}:${(vm & 0xff).toString(16).padStart(2, "0")}:${nic.toString(16).padStart(2, "0")}` as Mac;
}

function stats(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0).toFixed(1);
  return `median ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${at(1)} ms (n=${samples.length})`;
}

/** The daemon's RSS, and how much of it is anonymous memory (heaps) vs mapped files (the node binary, libraries). */
function rss(pid: number): string {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN) / 1024;
  return `${field("VmRSS").toFixed(1)} MiB (anonymous ${field("RssAnon").toFixed(1)}, files ${field("RssFile").toFixed(1)})`;
}

async function inParallel(count: number, work: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

const logger = createLogger("silent");
const hostId = `bench-${uniqueSuffix()}`;
const networkId = "bench-net";
const token = randomBytes(16).toString("hex");
const workDir = mkdtempSync(join(tmpdir(), "v6-bench-agent-"));
const stateDir = join(workDir, "state");
const dom0 = await Netns.create("v6bd");
const sim = await startXapiSimulator({ asyncDelayMs: 0, dom0: new NetnsDom0({ dom0: dom0.name }) });
const server = new ManagementServer({ tokens: [token], logger, commandTimeoutMs: 600_000 });
const daemonEnv: Record<string, string> =
  process.env.BENCH_DAEMON_NODE_OPTIONS === undefined ? {} : { NODE_OPTIONS: process.env.BENCH_DAEMON_NODE_OPTIONS };
let agent: DaemonProcess | undefined;

async function startAgent(): Promise<number> {
  const started = performance.now();
  agent = startAgentDaemon(configPath, daemonEnv);
  const exited = agent.exited.then((code) => {
    throw new Error(`agent exited (${code}):\n${agent?.output()}`);
  });
  await Promise.race([server.waitForAgent(hostId, 600_000), exited]);
  return performance.now() - started;
}

/** nic.plug of `vm`'s NIC `nic`: [ms to the result, ms to the protected vif.report]. */
async function plug(uuid: string, address: Mac): Promise<[number, number]> {
  const since = server.reports.last;
  const started = performance.now();
  const reported = (async () => {
    let seen = since;
    for (;;) {
      const reports = await server.reports.wait({ since: seen, hostId, method: "vif.report" }, 60_000);
      for (const report of reports) {
        seen = Math.max(seen, report.seq);
        const vif = report.params as VifReport;
        if (vif.mac === address && vif.state === "protected") return performance.now() - started;
      }
    }
  })();
  const result = (await server.call(hostId, "nic.plug", { vmUuid: uuid, networkId, mac: address })) as VifReport;
  const resultMs = performance.now() - started;
  if (result.state !== "protected") throw new Error(`nic.plug answered ${JSON.stringify(result)}`);
  return [resultMs, await reported];
}

let configPath = "";
try {
  const { url } = await server.start();
  const passwordFile = join(workDir, "xapi-password");
  writeFileSync(passwordFile, "xenroot\n", { mode: 0o600 });
  configPath = writeConfig(workDir, {
    hostId,
    management: { servers: [url], token },
    hypervisor: { kind: "xenserver", xapi: { url: sim.url, passwordFile } },
    firewall: { backend: "nft" },
    netns: dom0.name,
    stateDir,
    logLevel: "warn",
  });

  const session = () => sim.db.all("session")[0]?.[0];
  const sampleVms = Array.from({ length: SAMPLES }, (_, index) => sim.seed.vm({ nameLabel: `bench-${index}` }));
  const emptyStart = await startAgent();
  for (const vm of sampleVms) await sim.simulator.call("VM.start", [session(), vm.ref, false, false]);
  const ensured = (await server.call(hostId, "network.ensure", { networkId, prefix: "2001:db8:be::/64" })) as { bridge: string };

  // Few ports on the host: the first NICs, one at a time (the first with none other present).
  const alone: [number, number][] = [];
  for (let index = 0; index < SAMPLES; index++) {
    alone.push(await plug((sampleVms[index] as { uuid: string }).uuid, mac(index, 0)));
  }
  console.log(`nic.plug → result (rules active), 1st port on the host: ${(alone[0] as [number, number])[0].toFixed(1)} ms`);
  console.log(`nic.plug → result (rules active), ${SAMPLES} ports or fewer on the host: ${stats(alone.map((sample) => sample[0]))}`);
  console.log(`nic.plug → vif.report received, ${SAMPLES} ports or fewer on the host: ${stats(alone.map((sample) => sample[1]))}`);
  await agent?.stop();

  // The rest of the host, as if plugged earlier: running VMs with a VIF each, known to the state file.
  const fillStarted = performance.now();
  const network = sim.db.all("network").find(([, record]) => record.bridge === ensured.bridge)?.[0];
  if (network === undefined) throw new Error(`the simulator has no network with bridge ${ensured.bridge}`);
  const store = new StateStore<DesiredState>({
    path: join(stateDir, "desired-state.json"),
    version: SCHEMA_VERSION,
    validate: parseDesiredState,
    empty: () => {
      throw new Error("the daemon saved no state");
    },
  });
  let state = await store.load();
  const others = Array.from({ length: PORTS - SAMPLES }, (_, offset) => {
    const index = SAMPLES + offset;
    const vm = sim.seed.vm({ nameLabel: `bench-${index}` });
    sim.seed.vif({ vm: vm.ref, network, device: "0", mac: mac(index, 0) });
    state = withNic(state, vm.uuid, { networkId, mac: mac(index, 0), ipv6: [], ipv4: [] });
    return vm;
  });
  await store.save(state);
  await inParallel(others.length, async (index) => {
    // Straight into the simulator's operations: the daemon is down, so no session is open.
    await sim.simulator.operations.startVm((others[index] as { ref: string }).ref);
  });
  console.log(
    `made ${others.length} more running VMs with a VIF each in the simulator (real dom0 veths): ${((performance.now() - fillStarted) / 1000).toFixed(1)} s`,
  );

  const fullStart = await startAgent();
  const firewall = await createFirewall({ backend: "nft", netns: dom0.name });
  console.log(`startup (spawn → converged → hello), ${PORTS} ports, ${SAMPLES} of them with rules live: ${fullStart.toFixed(0)} ms`);
  console.log(`live ports in the nft table: ${(await firewall.readLive()).ports.length}`);

  // With the host full: second NICs on the first VMs.
  const full: [number, number][] = [];
  for (let index = 0; index < SAMPLES; index++) {
    full.push(await plug((sampleVms[index] as { uuid: string }).uuid, mac(index, 1)));
  }
  console.log(`nic.plug → result (rules active), ${PORTS}+ ports on the host: ${stats(full.map((sample) => sample[0]))}`);
  console.log(`nic.plug → vif.report received, ${PORTS}+ ports on the host: ${stats(full.map((sample) => sample[1]))}`);
  await new Promise((resolve) => setTimeout(resolve, 2000));
  console.log(`daemon RSS with ${PORTS + SAMPLES} ports, 2 s after the last plug: ${rss(agent?.child.pid as number)} (target < 80)`);
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  console.log(
    `daemon RSS with ${PORTS + SAMPLES} ports, ${SETTLE_MS / 1000} s later (periodic reconcile every 60 s): ${rss(agent?.child.pid as number)}`,
  );
  console.log(`live ports in the nft table: ${(await firewall.readLive()).ports.length}`);

  // Restart: converge before hello with every port already in place, then from an empty table.
  await agent?.stop();
  console.log(`startup (spawn → converged → hello), 0 ports: ${emptyStart.toFixed(0)} ms`);
  console.log(`startup (spawn → converged → hello), ${PORTS + SAMPLES} ports, rules already live: ${(await startAgent()).toFixed(0)} ms`);
  await new Promise((resolve) => setTimeout(resolve, 2000));
  console.log(`daemon RSS 2 s after startup with ${PORTS + SAMPLES} ports: ${rss(agent?.child.pid as number)}`);
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  console.log(
    `daemon RSS after startup with ${PORTS + SAMPLES} ports, ${SETTLE_MS / 1000} s later (periodic reconcile every 60 s): ${rss(agent?.child.pid as number)}`,
  );
  await agent?.stop();
  await firewall.removeAll();
  const rebuilt = await startAgent();
  console.log(`startup (spawn → converged → hello), ${PORTS + SAMPLES} ports, nft table empty: ${rebuilt.toFixed(0)} ms`);
  console.log(`live ports after that startup: ${(await firewall.readLive()).ports.length}`);
} finally {
  await agent?.stop();
  await server.stop();
  await sim.close();
  await dom0.destroy();
  rmSync(workDir, { recursive: true, force: true });
}

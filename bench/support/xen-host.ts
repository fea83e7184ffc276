/**
 * A simulated XenServer host for the agent benchmarks: XAPI simulator, dom0 made of real veths
 * and bridges in a network namespace (NetnsDom0), a ManagementServer in this process, and the
 * real `v6agent run` daemon (a child process, nft backend in dom0's namespace).
 *
 * `fill()` makes the host look as if it already ran many VMs: with the daemon stopped, it creates
 * and starts VMs with a VIF each in the simulator (dom0 gets their real veths) and adds their NICs
 * to the daemon's state file through the daemon's own StateStore and parser, as if earlier
 * nic.plugs had recorded them. Filling the host one nic.plug at a time would measure nothing new
 * and take most of an hour (every plug also creates a veth in dom0).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Mac } from "../../src/addressing/index.js";
import { type DesiredState, parseDesiredState, SCHEMA_VERSION, withNic } from "../../src/agent/desired-state.js";
import { StateStore } from "../../src/daemon/state-store.js";
import { NetnsDom0, type RunningXapiSimulator, startXapiSimulator } from "../../src/lab/xapi-sim/index.js";
import { createLogger } from "../../src/log.js";
import { ManagementServer } from "../../src/mgmt/index.js";
import type { VifReport } from "../../src/protocol/index.js";
import { type DaemonProcess, serviceEnvironment, startAgentDaemon, writeConfig } from "../../test/support/agent-daemon.js";
import { uniqueSuffix } from "../../test/support/names.js";
import { Netns } from "../../test/support/netns.js";

const CONCURRENCY = 8;

export function mac(vm: number, nic: number): Mac {
  return `52:54:00:${(vm >> 8).toString(16).padStart(2, "0")}:${(vm & 0xff).toString(16).padStart(2, "0")}:${nic.toString(16).padStart(2, "0")}` as Mac;
}

export function stats(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0).toFixed(1);
  return `median ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${at(1)} ms (n=${samples.length})`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A process's RSS in MiB, how much of it is anonymous memory (heaps) vs mapped files (the node binary, libraries), and its peak so far. */
export function rssOf(pid: number): { total: number; anonymous: number; files: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN) / 1024;
  return { total: field("VmRSS"), anonymous: field("RssAnon"), files: field("RssFile"), peak: field("VmHWM") };
}

export function formatRss(pid: number): string {
  const rss = rssOf(pid);
  return `${rss.total.toFixed(1)} MiB (anonymous ${rss.anonymous.toFixed(1)}, files ${rss.files.toFixed(1)}; peak so far ${rss.peak.toFixed(1)})`;
}

/** A process's biggest RSS holders from /proc/PID/smaps: files by name, anonymous memory lumped as [anon]. */
export function topMappings(pid: number, count = 8): string {
  const totals = new Map<string, number>();
  let name = "";
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header !== null) {
      const path = header[1] ?? "";
      name = path === "" ? "[anon]" : (path.split("/").pop() ?? path);
      continue;
    }
    const rssKb = /^Rss:\s+(\d+) kB/.exec(line);
    if (rssKb !== null) totals.set(name, (totals.get(name) ?? 0) + Number(rssKb[1]));
  }
  return [...totals]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([mapping, kb]) => `${mapping} ${(kb / 1024).toFixed(1)}`)
    .join(", ");
}

async function inParallel(count: number, work: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

export interface XenBenchHost {
  readonly hostId: string;
  readonly networkId: string;
  readonly server: ManagementServer;
  readonly sim: RunningXapiSimulator;
  /** dom0's network namespace, where the daemon's nft table lives. */
  readonly netns: string;
  /** The running daemon, if any. */
  readonly agent: DaemonProcess | undefined;
  /**
   * Starts the daemon as installed: with the environment packaging/v6agent.service gives it, to
   * which `env` adds (`NAME=` with an empty value turns one off); `nodeArgs` go before the script. Resolves with
   * ms from spawn to its hello.
   */
  startAgent(env?: Record<string, string>, nodeArgs?: readonly string[]): Promise<number>;
  stopAgent(): Promise<void>;
  /** network.ensure of the bench's /64; resolves with its bridge. */
  ensureNetwork(): Promise<string>;
  /** A new halted VM in the simulator. */
  newVm(index: number): { ref: string; uuid: string };
  startVm(vm: { ref: string }): Promise<void>;
  /** nic.plug: [ms to the result, ms to the protected vif.report]. */
  plug(uuid: string, address: Mac): Promise<[number, number]>;
  /** With the daemon stopped: `count` running VMs (indexes from `first`) with a VIF each, known to its state file. */
  fill(first: number, count: number, bridge: string): Promise<void>;
  close(): Promise<void>;
}

export async function startXenBenchHost(): Promise<XenBenchHost> {
  const logger = createLogger("silent");
  const hostId = `bench-${uniqueSuffix()}`;
  const networkId = "bench-net";
  const token = randomBytes(16).toString("hex");
  const workDir = mkdtempSync(join(tmpdir(), "v6-bench-agent-"));
  const stateDir = join(workDir, "state");
  const dom0 = await Netns.create("v6bd");
  const sim = await startXapiSimulator({ asyncDelayMs: 0, dom0: new NetnsDom0({ dom0: dom0.name }) });
  const server = new ManagementServer({ tokens: [token], logger, commandTimeoutMs: 600_000 });
  const { url } = await server.start();
  const passwordFile = join(workDir, "xapi-password");
  writeFileSync(passwordFile, "xenroot\n", { mode: 0o600 });
  const configPath = writeConfig(workDir, {
    hostId,
    management: { servers: [url], token },
    hypervisor: { kind: "xenserver", xapi: { url: sim.url, passwordFile } },
    firewall: { backend: "nft" },
    netns: dom0.name,
    stateDir,
    logLevel: "warn",
  });
  const session = () => sim.db.all("session")[0]?.[0];
  // PVH guests: one dom0 port per VIF. An HVM guest would add its emulated twin tap<domid>.<n>,
  // which gets the same rules: twice the ports for the same number of VIFs.
  const newVm = (index: number) => sim.seed.vm({ nameLabel: `bench-${index}`, domainType: "pvh" });
  let agent: DaemonProcess | undefined;

  return {
    hostId,
    networkId,
    server,
    sim,
    netns: dom0.name,
    get agent() {
      return agent;
    },
    async startAgent(env = {}, nodeArgs = []) {
      const started = performance.now();
      const daemon = startAgentDaemon(configPath, { ...serviceEnvironment(), ...env }, nodeArgs);
      agent = daemon;
      const exited = daemon.exited.then((code) => {
        throw new Error(`agent exited (${code}):\n${daemon.output()}`);
      });
      await Promise.race([server.waitForAgent(hostId, 600_000), exited]);
      return performance.now() - started;
    },
    async stopAgent() {
      await agent?.stop();
      agent = undefined;
    },
    async ensureNetwork() {
      const ensured = (await server.call(hostId, "network.ensure", { networkId, prefix: "2001:db8:be::/64" })) as { bridge: string };
      return ensured.bridge;
    },
    newVm,
    async startVm(vm) {
      await sim.simulator.call("VM.start", [session(), vm.ref, false, false]);
    },
    async plug(uuid, address) {
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
    },
    async fill(first, count, bridge) {
      const network = sim.db.all("network").find(([, record]) => record.bridge === bridge)?.[0];
      if (network === undefined) throw new Error(`the simulator has no network with bridge ${bridge}`);
      const store = new StateStore<DesiredState>({
        path: join(stateDir, "desired-state.json"),
        version: SCHEMA_VERSION,
        validate: parseDesiredState,
        empty: () => {
          throw new Error("the daemon saved no state");
        },
      });
      let state = await store.load();
      const vms = Array.from({ length: count }, (_, offset) => {
        const index = first + offset;
        const vm = newVm(index);
        sim.seed.vif({ vm: vm.ref, network, device: "0", mac: mac(index, 0) });
        state = withNic(state, vm.uuid, { networkId, mac: mac(index, 0), ipv6: [], ipv4: [] });
        return vm;
      });
      await store.save(state);
      await inParallel(vms.length, async (index) => {
        // Straight into the simulator's operations: the daemon is down, so no session is open.
        await sim.simulator.operations.startVm((vms[index] as { ref: string }).ref);
      });
    },
    async close() {
      await agent?.stop();
      await server.stop();
      await sim.close();
      await dom0.destroy();
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}

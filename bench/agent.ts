/**
 * The agent daemon (`v6agent run`, a real child process) on a simulated XenServer host: XAPI
 * simulator with 1,000 running VMs (no boots), dom0 made of real veths and bridges in a network
 * namespace (NetnsDom0), nft backend in that namespace, a ManagementServer in this process.
 * Prints: nic.plug → result (rules active: they are installed before the result) and
 * nic.plug → vif.report received, with 1 and with 1,000 ports on the host; startup (spawn →
 * converged → hello) with 0 and with 1,000 ports; the daemon's RSS with 1,000 ports.
 *
 *   npm run build && node dist/bench/agent.js [vms]
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Mac } from "../src/addressing/index.js";
import { createFirewall } from "../src/firewall/index.js";
import { createLogger } from "../src/log.js";
import { ManagementServer } from "../src/mgmt/index.js";
import type { VifReport } from "../src/protocol/index.js";
import { type DaemonProcess, startAgentDaemon, writeConfig } from "../test/support/agent-daemon.js";
import { uniqueSuffix } from "../test/support/names.js";
import { Netns } from "../test/support/netns.js";
import { NetnsDom0, startXapiSimulator } from "../test/support/xapi-sim/index.js";

const VMS = Number(process.argv[2] ?? 1000);
const SAMPLES = 20;
const CONCURRENCY = 8;

function mac(vm: number, nic: number): Mac {
  return `52:54:00:${(vm >> 8).toString(16).padStart(2, "0")}:${(vm & 0xff).toString(16).padStart(2, "0")}:${nic.toString(16).padStart(2, "0")}` as Mac;
}

function stats(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0).toFixed(1);
  return `median ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${at(1)} ms (n=${samples.length})`;
}

function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((entry) => entry.startsWith("VmRSS:"));
  return Number(line?.replace(/\D+/g, "")) / 1024;
}

const logger = createLogger("silent");
const hostId = `bench-${uniqueSuffix()}`;
const networkId = "bench-net";
const token = randomBytes(16).toString("hex");
const workDir = mkdtempSync(join(tmpdir(), "v6-bench-agent-"));
const dom0 = await Netns.create("v6bd");
const sim = await startXapiSimulator({ asyncDelayMs: 0, dom0: new NetnsDom0({ dom0: dom0.name }) });
const server = new ManagementServer({ tokens: [token], logger, commandTimeoutMs: 600_000 });
let agent: DaemonProcess | undefined;

async function startAgent(): Promise<number> {
  const started = performance.now();
  agent = startAgentDaemon(configPath);
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
      const reports = await server.reports.wait({ since: seen, hostId, method: "vif.report" }, 10_000);
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
    stateDir: join(workDir, "state"),
    logLevel: "warn",
  });

  const session = () => sim.db.all("session")[0]?.[0];
  const vms = Array.from({ length: VMS }, (_, index) => sim.seed.vm({ nameLabel: `bench-${index}` }));
  const emptyStart = await startAgent();
  for (const vm of vms) await sim.simulator.call("VM.start", [session(), vm.ref, false, false]);
  await server.call(hostId, "network.ensure", { networkId, prefix: "2001:db8:be::/64" });

  // One port on the host: the first NICs, one at a time.
  const alone: [number, number][] = [];
  for (let index = 0; index < SAMPLES; index++) {
    alone.push(await plug((vms[index] as { uuid: string }).uuid, mac(index, 0)));
  }
  console.log(`nic.plug → result (rules active), ${SAMPLES} ports or fewer on the host: ${stats(alone.map((sample) => sample[0]))}`);
  console.log(`nic.plug → vif.report received, ${SAMPLES} ports or fewer on the host: ${stats(alone.map((sample) => sample[1]))}`);

  // Fill the host to one port per VM.
  const fillStarted = performance.now();
  let next = SAMPLES;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < VMS) {
        const index = next++;
        await server.call(hostId, "nic.plug", { vmUuid: (vms[index] as { uuid: string }).uuid, networkId, mac: mac(index, 0) });
      }
    }),
  );
  console.log(
    `plugged ${VMS - SAMPLES} more NICs, ${CONCURRENCY} commands in flight: ${((performance.now() - fillStarted) / 1000).toFixed(1)} s`,
  );

  // With the host full: second NICs on the first VMs.
  const full: [number, number][] = [];
  for (let index = 0; index < SAMPLES; index++) {
    full.push(await plug((vms[index] as { uuid: string }).uuid, mac(index, 1)));
  }
  console.log(`nic.plug → result (rules active), ${VMS}+ ports on the host: ${stats(full.map((sample) => sample[0]))}`);
  console.log(`nic.plug → vif.report received, ${VMS}+ ports on the host: ${stats(full.map((sample) => sample[1]))}`);
  const pid = agent?.child.pid as number;
  console.log(`daemon RSS with ${VMS + SAMPLES} ports: ${rssMiB(pid).toFixed(1)} MiB (target < 80)`);

  const firewall = await createFirewall({ backend: "nft", netns: dom0.name });
  console.log(`live ports in the nft table: ${(await firewall.readLive()).ports.length}`);

  // Restart: converge before hello with every port already in place, then from an empty table.
  await agent?.stop();
  console.log(`startup (spawn → converged → hello), 0 ports: ${emptyStart.toFixed(0)} ms`);
  console.log(`startup (spawn → converged → hello), ${VMS + SAMPLES} ports, rules already live: ${(await startAgent()).toFixed(0)} ms`);
  console.log(`daemon RSS after startup with ${VMS + SAMPLES} ports: ${rssMiB(agent?.child.pid as number).toFixed(1)} MiB`);
  await agent?.stop();
  await firewall.removeAll();
  const rebuilt = await startAgent();
  console.log(`startup (spawn → converged → hello), ${VMS + SAMPLES} ports, nft table empty: ${rebuilt.toFixed(0)} ms`);
  console.log(`live ports after that startup: ${(await firewall.readLive()).ports.length}`);
} finally {
  await agent?.stop();
  await server.stop();
  await sim.close();
  await dom0.destroy();
  rmSync(workDir, { recursive: true, force: true });
}

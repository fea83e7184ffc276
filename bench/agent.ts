/**
 * The agent daemon (`v6agent run`, a real child process) on a simulated XenServer host
 * (bench/support/xen-host.ts: XAPI simulator, dom0 of real veths in a network namespace, nft
 * backend there, a ManagementServer in this process).
 *
 * Prints: nic.plug → result (rules active: they are installed before the result) and
 * nic.plug → vif.report received, with 1 and with 1,000 ports on the host; startup (spawn →
 * converged → hello) with 0 and with 1,000 ports; the daemon's RSS with 1,000 ports and after a
 * restart with them.
 *
 * The other VMs are made the way a host that already runs them looks (`fill()`): the daemon then
 * protects all of them in its startup reconcile (measured), and the measured plugs at full load
 * go through the daemon as before.
 *
 *   npm run build && node dist/bench/agent.js [ports]
 *
 * The daemon runs as installed (the environment of packaging/v6agent.service); BENCH_DAEMON_NODE_ARGS
 * adds node arguments (e.g. `--heapsnapshot-signal=SIGUSR2`).
 */
import { createFirewall } from "../src/firewall/index.js";
import { formatRss, mac, sleep, startXenBenchHost, stats, topMappings } from "./support/xen-host.js";

const PORTS = Number(process.argv[2] ?? 1000);
const SAMPLES = 20;
/** How long the daemon idles before a second RSS sample (V8's memory reducer acts after ~8 s of low allocation). */
const SETTLE_MS = 30_000;

const nodeArgs = (process.env.BENCH_DAEMON_NODE_ARGS ?? "").split(" ").filter((arg) => arg !== "");
const host = await startXenBenchHost();
const pid = () => host.agent?.child.pid as number;

try {
  const sampleVms = Array.from({ length: SAMPLES }, (_, index) => host.newVm(index));
  const emptyStart = await host.startAgent({}, nodeArgs);
  for (const vm of sampleVms) await host.startVm(vm);
  const bridge = await host.ensureNetwork();

  // Few ports on the host: the first NICs, one at a time (the first with none other present).
  const alone: [number, number][] = [];
  for (let index = 0; index < SAMPLES; index++) {
    alone.push(await host.plug((sampleVms[index] as { uuid: string }).uuid, mac(index, 0)));
  }
  console.log(`nic.plug → result (rules active), 1st port on the host: ${(alone[0] as [number, number])[0].toFixed(1)} ms`);
  console.log(`nic.plug → result (rules active), ${SAMPLES} ports or fewer on the host: ${stats(alone.map((sample) => sample[0]))}`);
  console.log(`nic.plug → vif.report received, ${SAMPLES} ports or fewer on the host: ${stats(alone.map((sample) => sample[1]))}`);
  await host.stopAgent();

  // The rest of the host, as if plugged earlier: running VMs with a VIF each, known to the state file.
  const fillStarted = performance.now();
  await host.fill(SAMPLES, PORTS - SAMPLES, bridge);
  console.log(
    `made ${PORTS - SAMPLES} more running VMs with a VIF each in the simulator (real dom0 veths): ${((performance.now() - fillStarted) / 1000).toFixed(1)} s`,
  );

  const fullStart = await host.startAgent({}, nodeArgs);
  const firewall = await createFirewall({ backend: "nft", netns: host.netns });
  console.log(`startup (spawn → converged → hello), ${PORTS} ports, ${SAMPLES} of them with rules live: ${fullStart.toFixed(0)} ms`);
  console.log(`live ports in the nft table: ${(await firewall.readLive()).ports.length}`);

  // With the host full: second NICs on the first VMs.
  const full: [number, number][] = [];
  for (let index = 0; index < SAMPLES; index++) {
    full.push(await host.plug((sampleVms[index] as { uuid: string }).uuid, mac(index, 1)));
  }
  console.log(`nic.plug → result (rules active), ${PORTS}+ ports on the host: ${stats(full.map((sample) => sample[0]))}`);
  console.log(`nic.plug → vif.report received, ${PORTS}+ ports on the host: ${stats(full.map((sample) => sample[1]))}`);
  await sleep(2000);
  console.log(`daemon RSS with ${PORTS + SAMPLES} ports, 2 s after the last plug: ${formatRss(pid())} (target < 80)`);
  await sleep(SETTLE_MS);
  console.log(`daemon RSS with ${PORTS + SAMPLES} ports, ${SETTLE_MS / 1000} s later (periodic reconcile every 60 s): ${formatRss(pid())}`);
  console.log(`  biggest mappings (MiB): ${topMappings(pid())}`);
  console.log(`live ports in the nft table: ${(await firewall.readLive()).ports.length}`);

  // Restart: converge before hello with every port already in place, then from an empty table.
  await host.stopAgent();
  console.log(`startup (spawn → converged → hello), 0 ports: ${emptyStart.toFixed(0)} ms`);
  console.log(
    `startup (spawn → converged → hello), ${PORTS + SAMPLES} ports, rules already live: ${(await host.startAgent({}, nodeArgs)).toFixed(0)} ms`,
  );
  await sleep(2000);
  console.log(`daemon RSS 2 s after startup with ${PORTS + SAMPLES} ports: ${formatRss(pid())}`);
  await sleep(SETTLE_MS);
  console.log(
    `daemon RSS after startup with ${PORTS + SAMPLES} ports, ${SETTLE_MS / 1000} s later (periodic reconcile every 60 s): ${formatRss(pid())}`,
  );
  console.log(`  biggest mappings (MiB): ${topMappings(pid())}`);
  await host.stopAgent();
  await firewall.removeAll();
  const rebuilt = await host.startAgent({}, nodeArgs);
  console.log(`startup (spawn → converged → hello), ${PORTS + SAMPLES} ports, nft table empty: ${rebuilt.toFixed(0)} ms`);
  console.log(`live ports after that startup: ${(await firewall.readLive()).ports.length}`);
} finally {
  await host.close();
}

/**
 * The daemon's RSS with 1,000 ports on a simulated XenServer host (bench/support/xen-host.ts),
 * under several runtime settings, each in a fresh daemon on the same host: startup reconcile of
 * every port, 20 nic.plugs, then RSS 2 s and 30 s later; the 20 NICs are unplugged again before
 * the next variant (a Linux bridge takes at most 1,024 ports).
 *
 *   npm run build && node dist/bench/agent-memory.js [ports] [variant ...]
 *
 * A variant is `name=words`: node arguments (given before the script) and environment variables,
 * e.g. `bare="NODE_OPTIONS= MALLOC_ARENA_MAX="` (without the unit's settings); `default` runs
 * the daemon as installed (the environment of packaging/v6agent.service). Without variants: `default` only.
 */
import { formatRss, mac, sleep, startXenBenchHost, topMappings } from "./support/xen-host.js";

const PORTS = Number(process.argv[2] ?? 1000);
const isEnv = (word: string) => /^[A-Z_][A-Z0-9_]*=/.test(word);
const variants = (process.argv.length > 3 ? process.argv.slice(3) : ["default"]).map((spec) => {
  const [name, ...rest] = spec.split("=");
  const words = rest
    .join("=")
    .split(" ")
    .filter((word) => word !== "");
  return {
    name: name ?? spec,
    env: Object.fromEntries(words.filter(isEnv).map((word) => [word.slice(0, word.indexOf("=")), word.slice(word.indexOf("=") + 1)])),
    nodeArgs: words.filter((word) => !isEnv(word)),
  };
});
const PLUGS = 20;
const SETTLE_MS = 30_000;

const host = await startXenBenchHost();
const pid = () => host.agent?.child.pid as number;
try {
  const plugVms = Array.from({ length: PLUGS }, (_, index) => host.newVm(index));
  await host.startAgent();
  for (const vm of plugVms) await host.startVm(vm);
  const bridge = await host.ensureNetwork();
  await host.stopAgent();
  await host.fill(PLUGS, PORTS - PLUGS, bridge);
  for (const variant of variants) {
    const startup = await host.startAgent(variant.env, variant.nodeArgs);
    for (let index = 0; index < PLUGS; index++) {
      await host.plug((plugVms[index] as { uuid: string }).uuid, mac(index, 0));
    }
    await sleep(2000);
    const early = formatRss(pid());
    await sleep(SETTLE_MS);
    console.log(
      `${variant.name}: startup ${startup.toFixed(0)} ms; RSS 2 s after ${PLUGS} plugs ${early}; ${SETTLE_MS / 1000} s later ${formatRss(pid())}`,
    );
    console.log(`  biggest mappings (MiB): ${topMappings(pid())}`);
    for (let index = 0; index < PLUGS; index++) {
      await host.server.call(host.hostId, "nic.unplug", { vmUuid: (plugVms[index] as { uuid: string }).uuid, mac: mac(index, 0) });
    }
    await host.stopAgent();
  }
} finally {
  await host.close();
}

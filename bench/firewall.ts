/**
 * Firewall apply costs, per backend, for N ports present (issue 3, issue 16):
 *   full     — reconcile N ports onto an empty ruleset
 *   add1     — upsertPort of one new port with N present (median of REPEAT)
 *   remove1  — removePort of that port with N present (median of REPEAT)
 * with, in the same run, two baselines: nft with a fresh libnftables context per call (what the
 * first generation did: the close after a commit waits for an RCU grace period), and a naive
 * agent that runs one ebtables/ip6tables command per rule. It prints the kernel's
 * /sys/kernel/rcu_expedited (0 on a fresh machine), which sets that grace period's cost, and
 * checks the figures against issue 16's targets. Everything runs in private network namespaces.
 * Run: npm run build && node dist/bench/firewall.js [--naive-full-max 10] [--max 10000]
 */
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { run } from "../src/exec.js";
import { createFirewall } from "../src/firewall/index.js";
import type { Firewall, FirewallState, GuestPort } from "../src/firewall/model.js";
import { releaseNft } from "../src/firewall/nft/libnftables.js";
import { EB_MAIN, ebDispatchRules, ebPortRules } from "../src/firewall/xtables/ebtables.js";
import { IP6_MAIN, ip6DispatchRule, ip6PortRules, ip6TargetRules } from "../src/firewall/xtables/ip6tables.js";
import { Netns } from "../src/lab/netns.js";

const REPEAT = 21;
const option = (name: string, fallback: number) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
const naiveFullMax = option("--naive-full-max", 10);
const max = option("--max", 10_000);

function port(i: number): GuestPort {
  const hex = (n: number) => n.toString(16).padStart(2, "0");
  return {
    device: `vnet${i}`,
    bridge: "br0",
    mac: `52:54:00:01:${hex((i >> 8) & 0xff)}:${hex(i & 0xff)}`,
    linkLocals: [`fe80::5054:ff:fe01:${(i + 1).toString(16)}`],
    ipv6: [`2001:db8:1:1::${(i + 1).toString(16)}`],
    ipv4: [],
  } as unknown as GuestPort;
}

function state(n: number): FirewallState {
  return {
    bridges: [{ name: "br0", trustedPorts: ["uplink0"], guestPortPatterns: ["vnet*"] }] as never,
    ports: Array.from({ length: n }, (_, i) => port(i)),
  };
}

/**
 * CPU milliseconds of this process (the nft backend runs libnftables in-process) plus its
 * waited-for child processes (the xtables tools): utime + stime from /proc/self/stat.
 */
function cpuMs(): number {
  const fields = readFileSync("/proc/self/stat", "utf8").split(") ")[1]?.split(" ") ?? [];
  return ((Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * 1000) / 100;
}

let lastCpu = 0;

/** Wall time of `action`; its CPU time is left in `lastCpu`. */
async function time(action: () => Promise<unknown>): Promise<number> {
  const cpu = cpuMs();
  const start = performance.now();
  await action();
  lastCpu = cpuMs() - cpu;
  return performance.now() - start;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

interface Row {
  backend: string;
  n: number;
  full: number | undefined;
  /** CPU time during the full apply (the machine is shared; wall time includes waiting). */
  fullCpu: number | undefined;
  add1: number;
  remove1: number;
}

/** `fresh`: release the namespace's nft context after every change, as one context per call did. */
async function measureBackend(backend: "nft" | "xtables", n: number, label: string = backend, fresh = false): Promise<Row> {
  const ns = await Netns.create("fwb");
  try {
    const firewall: Firewall = await createFirewall({ backend, netns: ns.name });
    const full = await time(() => firewall.reconcile(state(n)));
    const fullCpu = lastCpu;
    const adds: number[] = [];
    const removes: number[] = [];
    for (let r = 0; r < REPEAT; r++) {
      const extra = port(50_000 + r);
      adds.push(
        await time(async () => {
          await firewall.upsertPort(extra);
          if (fresh) await releaseNft(ns.name);
        }),
      );
      removes.push(
        await time(async () => {
          await firewall.removePort(extra.device);
          if (fresh) await releaseNft(ns.name);
        }),
      );
    }
    await releaseNft(ns.name);
    return {
      backend: label,
      n,
      full: fresh ? undefined : full,
      fullCpu: fresh ? undefined : fullCpu,
      add1: median(adds),
      remove1: median(removes),
    };
  } finally {
    await ns.destroy();
  }
}

/** Splits a save-format rule into arguments (double-quoted parts stay whole). */
function args(rule: string): string[] {
  return [...rule.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => (m[1] ?? m[2]) as string);
}

/** The naive agent: one process per chain and per rule, in the same tables as the batch backend. */
async function naiveAddPort(ns: Netns, p: GuestPort): Promise<void> {
  const eb = (a: string[]) => ns.exec("ebtables", ["-t", "nat", ...a]);
  const ip6 = (a: string[]) => ns.exec("ip6tables", ["-w", "-t", "raw", ...a]);
  await eb(["-N", `V6A-${p.device}`, "-P", "RETURN"]);
  for (const r of ebPortRules(p)) await eb(["-A", `V6A-${p.device}`, ...args(r.text)]);
  await ip6(["-N", `V6N-${p.device}`]);
  await ip6(["-N", `V6A-${p.device}`]);
  for (const r of ip6TargetRules(p)) await ip6(["-A", `V6N-${p.device}`, ...args(r.text)]);
  for (const r of ip6PortRules(p)) await ip6(["-A", `V6A-${p.device}`, ...args(r.text)]);
  const [jump, ret] = ebDispatchRules(p.device);
  await eb(["-I", EB_MAIN, "1", ...args(ret)]);
  await eb(["-I", EB_MAIN, "1", ...args(jump)]);
  await ip6(["-I", IP6_MAIN, "1", ...args(ip6DispatchRule(p.device, p.bridge))]);
}

async function naiveRemovePort(ns: Netns, p: GuestPort): Promise<void> {
  const eb = (a: string[]) => ns.exec("ebtables", ["-t", "nat", ...a]);
  const ip6 = (a: string[]) => ns.exec("ip6tables", ["-w", "-t", "raw", ...a]);
  for (const r of ebDispatchRules(p.device)) await eb(["-D", EB_MAIN, ...args(r)]);
  await eb(["-F", `V6A-${p.device}`]);
  await eb(["-X", `V6A-${p.device}`]);
  await ip6(["-D", IP6_MAIN, ...args(ip6DispatchRule(p.device, p.bridge))]);
  for (const chain of [`V6A-${p.device}`, `V6N-${p.device}`]) await ip6(["-F", chain]);
  for (const chain of [`V6A-${p.device}`, `V6N-${p.device}`]) await ip6(["-X", chain]);
}

async function measureNaive(n: number): Promise<Row> {
  const ns = await Netns.create("fwn");
  try {
    const firewall = await createFirewall({ backend: "xtables", netns: ns.name });
    let full: number | undefined;
    let fullCpu: number | undefined;
    if (n <= naiveFullMax) {
      await firewall.reconcile(state(0));
      full = await time(async () => {
        for (const p of state(n).ports) await naiveAddPort(ns, p);
      });
      fullCpu = lastCpu;
    } else {
      // Populating N ports one exec at a time takes minutes; fill with the batch path.
      await firewall.reconcile(state(n));
    }
    const adds: number[] = [];
    const removes: number[] = [];
    for (let r = 0; r < 5; r++) {
      const extra = port(50_000 + r);
      adds.push(await time(() => naiveAddPort(ns, extra)));
      removes.push(await time(() => naiveRemovePort(ns, extra)));
    }
    return { backend: "naive (1 exec/rule)", n, full, fullCpu, add1: median(adds), remove1: median(removes) };
  } finally {
    await ns.destroy();
  }
}

const ms = (v: number | undefined) => (v === undefined ? "—" : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(1)} ms`);

async function main(): Promise<void> {
  const rules = { eb: ebPortRules(port(1)).length, ip6: ip6PortRules(port(1)).length + ip6TargetRules(port(1)).length };
  const nftVersion = (await run("nft", ["--version"])).stdout.trim();
  const ebVersion = (await run("ebtables", ["--version"])).stdout.trim();
  const expedited = readFileSync("/sys/kernel/rcu_expedited", "utf8").trim();
  console.log(`# firewall bench — ${nftVersion}; ${ebVersion}; xtables: ${rules.eb} ebtables + ${rules.ip6} ip6tables rules per port`);
  console.log(`kernel ${readFileSync("/proc/sys/kernel/osrelease", "utf8").trim()}, /sys/kernel/rcu_expedited = ${expedited}`);
  const loadAverage = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  const rows: Row[] = [];
  for (const n of [10, 100, 1000, 10_000].filter((size) => size <= max)) rows.push(await measureBackend("nft", n));
  for (const n of [10, 1000]) rows.push(await measureBackend("nft", n, "nft, fresh context per call", true));
  for (const n of [10, 100, 1000]) rows.push(await measureBackend("xtables", n));
  for (const n of [10, 1000]) rows.push(await measureNaive(n));
  console.log("");
  console.log(`load average at start: ${loadAverage}`);
  console.log("| backend | N | full apply of N (wall) | CPU | add 1 port (N present) | remove 1 port (N present) |");
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const r of rows) console.log(`| ${r.backend} | ${r.n} | ${ms(r.full)} | ${ms(r.fullCpu)} | ${ms(r.add1)} | ${ms(r.remove1)} |`);
  const at = (backend: string, n: number) => rows.find((r) => r.backend === backend && r.n === n);
  const nft10 = at("nft", 10) as Row;
  const nft1000 = at("nft", 1000) as Row;
  const nft10k = at("nft", 10_000);
  const xt1000 = at("xtables", 1000) as Row;
  const worst = (r: Row) => Math.max(r.add1, r.remove1);
  const ratio = Math.max(nft1000.add1 / nft10.add1, nft1000.remove1 / nft10.remove1);
  const targets: [string, boolean | undefined, string][] = [
    ["nft one port added/removed with 1,000 present < 5 ms median", worst(nft1000) < 5, ms(worst(nft1000))],
    ["nft at 1,000 ≤ 1.5× the cost with 10", ratio <= 1.5, `${ratio.toFixed(2)}×`],
    [
      "nft one port with 10,000 present < 10 ms",
      nft10k === undefined ? undefined : worst(nft10k) < 10,
      nft10k === undefined ? "not run" : ms(worst(nft10k)),
    ],
    ["nft full apply of 1,000 ports < 300 ms", (nft1000.full ?? Infinity) < 300, ms(nft1000.full)],
    ["xtables one port with 1,000 present < 30 ms", worst(xt1000) < 30, ms(worst(xt1000))],
  ];
  console.log("");
  console.log("issue 16 targets (worst of add and remove):");
  for (const [target, met, value] of targets)
    console.log(`- ${met === undefined ? "not measured" : met ? "met" : "NOT met"}: ${target} — ${value}`);
  const naive = at("naive (1 exec/rule)", 1000) as Row;
  const fresh = at("nft, fresh context per call", 1000) as Row;
  console.log("");
  console.log(`nft kept context vs fresh context per call, add 1 port at N=1000: ${(fresh.add1 / nft1000.add1).toFixed(1)}× faster`);
  console.log(`naive / xtables batch, add 1 port at N=1000: ${(naive.add1 / xt1000.add1).toFixed(1)}×`);
  console.log(`naive / nft, add 1 port at N=1000: ${(naive.add1 / nft1000.add1).toFixed(1)}×`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

/**
 * Firewall apply costs, per backend, for N = 10, 100, 1000 ports (issue 3):
 *   full     — reconcile N ports onto an empty ruleset
 *   add1     — upsertPort of one new port with N present (median of 11)
 *   remove1  — removePort of that port with N present (median of 11)
 * and the same for a naive baseline that runs one ebtables/ip6tables command per rule (the
 * pattern of many agents). Everything runs in a private network namespace.
 * For nft it also takes one transaction apart at each N (see `anatomy`): what grows with the
 * table is the kernel validating every chain reachable from the base chain at the commit of
 * any transaction that adds a rule with a verdict.
 * Run: npm run build && node dist/bench/firewall.js [--naive-full-max 100]
 */
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { run } from "../src/exec.js";
import { createFirewall } from "../src/firewall/index.js";
import type { Firewall, FirewallState, GuestPort } from "../src/firewall/model.js";
import { nft } from "../src/firewall/nft/libnftables.js";
import { TABLE } from "../src/firewall/nft/render.js";
import { ebDispatchRules, ebPortRules, ip6DispatchRule, ip6PortRules, ip6TargetRules } from "../src/firewall/xtables/render.js";
import { Netns } from "../src/lab/netns.js";

const SIZES = [10, 100, 1000];
const REPEAT = 11;
const flag = process.argv.indexOf("--naive-full-max");
const naiveFullMax = flag > 0 ? Number(process.argv[flag + 1]) : 100;

function port(i: number): GuestPort {
  const b = (i >> 8) & 0xff;
  const c = i & 0xff;
  const hex = (n: number) => n.toString(16).padStart(2, "0");
  return {
    device: `vnet${i}`,
    bridge: "br0",
    mac: `52:54:00:01:${hex(b)}:${hex(c)}`,
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
  // After "pid (comm) ": state is field 3, so utime/stime (14, 15) and cutime/cstime (16, 17)
  // are at index 11..14.
  return ((Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * 1000) / 100;
}

let lastCpu = 0;

/** Wall time of `action`; its child-process CPU time is left in `lastCpu`. */
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

interface Anatomy {
  n: number;
  /** `add chain`: parse, table cache, commit. */
  chain: number;
  /** + a rule without a verdict: nft also fetches every chain of the table; no kernel validation. */
  ruleNoVerdict: number;
  /** + a rule with a verdict (in a chain nothing jumps to): the kernel validates the whole table. */
  ruleVerdict: number;
}

const anatomies: Anatomy[] = [];

/** One transaction taken apart, with the N-port table in place (medians). */
async function measureAnatomy(netns: string, n: number): Promise<Anatomy> {
  const sample = async (script: string) => {
    const values: number[] = [];
    for (let r = 0; r < REPEAT; r++) values.push(await time(() => nft(script, { netns })));
    return median(values);
  };
  await nft(`add chain bridge ${TABLE} bench_probe`, { netns });
  const anatomy = {
    n,
    chain: await sample(`add chain bridge ${TABLE} bench_probe`),
    ruleNoVerdict: await sample(
      `flush chain bridge ${TABLE} bench_probe\nadd rule bridge ${TABLE} bench_probe ether saddr 00:00:5e:00:53:01 counter`,
    ),
    ruleVerdict: await sample(
      `flush chain bridge ${TABLE} bench_probe\nadd rule bridge ${TABLE} bench_probe ether saddr 00:00:5e:00:53:01 drop`,
    ),
  };
  await nft(`flush chain bridge ${TABLE} bench_probe\ndelete chain bridge ${TABLE} bench_probe`, { netns });
  return anatomy;
}

interface Row {
  backend: string;
  n: number;
  full: number | undefined;
  /** CPU time of the tools during the full apply (the machine is shared; wall time includes waiting). */
  fullCpu: number | undefined;
  add1: number;
  remove1: number;
}

async function measureBackend(backend: "nft" | "xtables", n: number): Promise<Row> {
  const ns = await Netns.create("fwb");
  try {
    const firewall: Firewall = await createFirewall({ backend, netns: ns.name });
    const full = await time(() => firewall.reconcile(state(n)));
    const fullCpu = lastCpu;
    const adds: number[] = [];
    const removes: number[] = [];
    for (let r = 0; r < REPEAT; r++) {
      const extra = port(5000 + r);
      adds.push(await time(() => firewall.upsertPort(extra)));
      removes.push(await time(() => firewall.removePort(extra.device)));
    }
    if (backend === "nft") anatomies.push(await measureAnatomy(ns.name, n));
    return { backend, n, full, fullCpu, add1: median(adds), remove1: median(removes) };
  } finally {
    await ns.destroy();
  }
}

/** Splits a save-format rule into arguments (double-quoted parts stay whole). */
function args(rule: string): string[] {
  return [...rule.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => (m[1] ?? m[2]) as string);
}

/** The naive agent: one process per chain and per rule. */
async function naiveAddPort(ns: Netns, p: GuestPort): Promise<void> {
  const eb = (a: string[]) => ns.exec("ebtables", a);
  const ip6 = (a: string[]) => ns.exec("ip6tables", ["-w", ...a]);
  await eb(["-N", `V6A-${p.device}`, "-P", "RETURN"]);
  for (const r of ebPortRules(p)) await eb(["-A", `V6A-${p.device}`, ...args(r.text)]);
  await ip6(["-N", `V6N-${p.device}`]);
  await ip6(["-N", `V6A-${p.device}`]);
  for (const r of ip6TargetRules(p)) await ip6(["-A", `V6N-${p.device}`, ...args(r.text)]);
  for (const r of ip6PortRules(p)) await ip6(["-A", `V6A-${p.device}`, ...args(r.text)]);
  const [jump, ret] = ebDispatchRules(p.device);
  await eb(["-I", "V6AGENT", "1", ...args(ret)]);
  await eb(["-I", "V6AGENT", "1", ...args(jump)]);
  await ip6(["-I", "V6AGENT", "1", ...args(ip6DispatchRule(p.device, p.bridge))]);
}

async function naiveRemovePort(ns: Netns, p: GuestPort): Promise<void> {
  const eb = (a: string[]) => ns.exec("ebtables", a);
  const ip6 = (a: string[]) => ns.exec("ip6tables", ["-w", ...a]);
  for (const r of ebDispatchRules(p.device)) await eb(["-D", "V6AGENT", ...args(r)]);
  await eb(["-F", `V6A-${p.device}`]);
  await eb(["-X", `V6A-${p.device}`]);
  await ip6(["-D", "V6AGENT", ...args(ip6DispatchRule(p.device, p.bridge))]);
  for (const chain of [`V6A-${p.device}`, `V6N-${p.device}`]) await ip6(["-F", chain]);
  for (const chain of [`V6A-${p.device}`, `V6N-${p.device}`]) await ip6(["-X", chain]);
}

async function measureNaive(n: number): Promise<Row> {
  const ns = await Netns.create("fwn");
  try {
    const firewall = await createFirewall({ backend: "xtables", netns: ns.name });
    const ports = state(n).ports;
    let full: number | undefined;
    let fullCpu: number | undefined;
    if (n <= naiveFullMax) {
      await firewall.reconcile({ ...state(0) });
      full = await time(async () => {
        for (const p of ports) await naiveAddPort(ns, p);
      });
      fullCpu = lastCpu;
    } else {
      // Populating 1000 ports one exec at a time takes minutes; fill with the batch path.
      await firewall.reconcile(state(n));
    }
    const adds: number[] = [];
    const removes: number[] = [];
    for (let r = 0; r < REPEAT; r++) {
      const extra = port(5000 + r);
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
  console.log(`# firewall bench — ${nftVersion}; ${ebVersion}; ${rules.eb} ebtables + ${rules.ip6} ip6tables rules per port`);
  const loadAverage = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  const rows: Row[] = [];
  for (const backend of ["nft", "xtables"] as const) for (const n of SIZES) rows.push(await measureBackend(backend, n));
  for (const n of SIZES) rows.push(await measureNaive(n));
  console.log("");
  console.log(`load average at start: ${loadAverage}`);
  console.log(`| backend | N | full apply of N (wall) | CPU (agent + tools) | add 1 port (N present) | remove 1 port (N present) |`);
  console.log(`|---|---:|---:|---:|---:|---:|`);
  for (const r of rows) console.log(`| ${r.backend} | ${r.n} | ${ms(r.full)} | ${ms(r.fullCpu)} | ${ms(r.add1)} | ${ms(r.remove1)} |`);
  const at = (backend: string, n: number) => rows.find((r) => r.backend === backend && r.n === n) as Row;
  console.log("");
  console.log(`nft add at 1000 vs 10: ${(at("nft", 1000).add1 / at("nft", 10).add1).toFixed(2)}x`);
  console.log("");
  console.log("nft transaction anatomy (libnftables in-process; medians):");
  console.log("| N | add chain | + rule, no verdict (chain cache) | + rule with verdict (kernel validates the table) |");
  console.log("|---:|---:|---:|---:|");
  for (const a of anatomies) console.log(`| ${a.n} | ${ms(a.chain)} | ${ms(a.ruleNoVerdict)} | ${ms(a.ruleVerdict)} |`);
  const naive = at("naive (1 exec/rule)", 1000);
  console.log(`naive / xtables batch, add 1 port at N=1000: ${(naive.add1 / at("xtables", 1000).add1).toFixed(1)}x`);
  console.log(`naive / nft, add 1 port at N=1000: ${(naive.add1 / at("nft", 1000).add1).toFixed(1)}x`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

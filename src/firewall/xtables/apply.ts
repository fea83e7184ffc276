import { parseInterfaceName } from "../../addressing/index.js";
import { V6Error } from "../../errors.js";
import { CommandError, run } from "../../exec.js";
import type { Logger } from "../../log.js";
import type { ApplyResult, DropCounter, Firewall, FirewallState, GuestPort, ManagedBridge, PortCounters } from "../model.js";
import { probeNftCapabilities } from "../nft/apply.js";
import { validateBridge, validatePort, validateState } from "../validate.js";
import { parseSave, type SavedTable } from "./live.js";
import {
  EB_MAIN,
  ebBridgeChain,
  ebBridgeRules,
  ebDispatchRules,
  ebPortChain,
  ebPortLines,
  ebPortRules,
  IP6_MAIN,
  ip6DispatchRule,
  ip6PortChain,
  ip6PortLines,
  ip6PortRules,
  ip6TargetChain,
  ip6TargetRules,
  restoreBatch,
  ruleKind,
} from "./render.js";

/** Which binaries speak to the kernel: the nf_tables flavour (Debian's default) or legacy. */
export interface XtablesTools {
  flavour: "nft" | "legacy";
  ebRestore: string;
  ebSave: string;
  ip6Restore: string;
  ip6Save: string;
}

export interface XtablesFirewallOptions {
  netns?: string;
  logger?: Logger;
  /**
   * Hold this file's POSIX (fcntl) lock while a batch applies: xenopsd's `setup-vif-rules`
   * rewrites FORWARD under `/var/lock/ebtables.lock` on every VIF plug (docs/xenserver.md).
   */
  lockFile?: string;
}

/** The dom0 lock xenopsd takes around its ebtables changes. */
export const XAPI_EBTABLES_LOCK = "/var/lock/ebtables.lock";

/**
 * Takes an fcntl lock on argv[1] (util-linux flock(1) takes a BSD lock, which does not exclude
 * POSIX locks on Linux), then becomes argv[2..]: the lock lives as long as that process and the
 * batch on stdin passes straight through.
 */
/** dom0's system Python (XenServer 8 / XCP-ng 8.3 ship it; xapi's own scripts use it). */
const LOCK_PYTHON = "/usr/bin/python3";
const FCNTL_LOCK_EXEC = [
  "import fcntl, os, sys",
  "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)",
  "fcntl.lockf(fd, fcntl.LOCK_EX)",
  "os.set_inheritable(fd, True)",
  "os.execvp(sys.argv[2], sys.argv[2:])",
].join("\n");

const HOOKS = ["FORWARD", "INPUT"] as const;

/**
 * The ebtables + ip6tables backend. Every change is one `ebtables-restore --noflush` batch and
 * one `ip6tables-restore -w --noflush` batch (each atomic for its table); the two tools cannot
 * share a transaction, so a new port gets its L3 rules before its L2 dispatch (until then the
 * bridge's fail-closed rule drops it) and a removed port loses its L2 dispatch first.
 */
export class XtablesFirewall implements Firewall {
  readonly backend = "xtables" as const;
  private readonly netns: string | undefined;
  private readonly logger: Logger | undefined;
  private readonly lockFile: string | undefined;
  /** Ports whose dispatch rules this process knows exist (after reconcile or upsert). */
  private readonly known = new Map<string, string>();

  private constructor(
    readonly tools: XtablesTools,
    private readonly bridgeMeta: boolean,
    options: XtablesFirewallOptions,
  ) {
    this.netns = options.netns;
    this.lockFile = options.lockFile;
    this.logger = options.logger?.child({ component: "firewall", backend: "xtables", flavour: tools.flavour });
  }

  static async create(options: XtablesFirewallOptions = {}): Promise<XtablesFirewall> {
    const tools = await detectTools(options.netns);
    // Legacy ebtables has --logical-in natively; the nf_tables flavour needs bridge meta.
    const bridgeMeta = tools.flavour === "legacy" ? true : (await probeNftCapabilities(options.netns)).bridgeMeta;
    return new XtablesFirewall(tools, bridgeMeta, options);
  }

  async reconcile(desired: FirewallState, options: { dryRun?: boolean } = {}): Promise<ApplyResult> {
    const state = validateState(desired);
    return this.reconcileSaved(state, await this.saveBoth(), options);
  }

  /** Reconcile against tables already read (ensureBridge and removeBridge read them once). */
  private async reconcileSaved(
    state: FirewallState,
    [eb, ip6]: [SavedTable, SavedTable],
    options: { dryRun?: boolean } = {},
  ): Promise<ApplyResult> {
    const result: ApplyResult = { changed: false, addedPorts: [], updatedPorts: [], removedPorts: [] };

    const ebLines: string[] = [];
    const ip6Lines: string[] = [];
    const ebDeclare: string[] = [];
    const ip6Declare: string[] = [];
    const ebTail: string[] = [];
    const ip6Tail: string[] = [];

    // Skeleton: our main chains and one jump from each built-in hook.
    if (!eb.chains.has(EB_MAIN)) ebDeclare.push(`:${EB_MAIN} RETURN`);
    if (!ip6.chains.has(IP6_MAIN)) ip6Declare.push(`:${IP6_MAIN} - [0:0]`);
    // The jump must stay first: a rule above it (xapi's `-j FORWARD_vif*`, whose ACCEPT ends the
    // traversal) would let frames skip our policy, so a jump found lower down is moved up.
    for (const hook of HOOKS) {
      ebLines.push(...jumpFirst(eb.chains.get(hook)?.rules ?? [], hook, EB_MAIN));
      ip6Lines.push(...jumpFirst(ip6.chains.get(hook)?.rules ?? [], hook, IP6_MAIN));
    }

    // Ports.
    for (const port of state.ports) {
      const ebChain = ebPortChain(port.device);
      const ip6Chain = ip6PortChain(port.device);
      const target = ip6TargetChain(port.device);
      const same =
        sameRules(
          eb.chains.get(ebChain)?.rules,
          ebPortRules(port).map((r) => r.text),
        ) &&
        sameRules(
          ip6.chains.get(ip6Chain)?.rules,
          ip6PortRules(port).map((r) => r.text),
        ) &&
        sameRules(
          ip6.chains.get(target)?.rules,
          ip6TargetRules(port).map((r) => r.text),
        );
      if (same) continue;
      const exists = eb.chains.has(ebChain) || ip6.chains.has(ip6Chain);
      (exists ? result.updatedPorts : result.addedPorts).push(port.device);
      const [ebHead, ...ebRules] = ebPortLines(port);
      ebDeclare.push(ebHead as string);
      ebLines.push(...ebRules);
      const ip6PortBatch = ip6PortLines(port);
      ip6Declare.push(...ip6PortBatch.filter((l) => l.startsWith(":")));
      ip6Lines.push(...ip6PortBatch.filter((l) => !l.startsWith(":")));
    }

    // Bridges.
    for (const bridge of state.bridges) {
      const chain = ebBridgeChain(bridge.name);
      const rules = ebBridgeRules(bridge, this.bridgeMeta).map((r) => r.text);
      if (sameRules(eb.chains.get(chain)?.rules, rules)) continue;
      ebDeclare.push(`:${chain} RETURN`);
      ebLines.push(...rules.map((r) => `-A ${chain} ${r}`));
    }

    // The main chains: port dispatch (any order) then one jump per bridge, rewritten whole when different.
    const ebMain = [...state.ports.flatMap((p) => ebDispatchRules(p.device)), ...state.bridges.map((b) => `-j ${ebBridgeChain(b.name)}`)];
    const ip6Main = state.ports.map((p) => ip6DispatchRule(p.device, p.bridge));
    const ebMainLive = eb.chains.get(EB_MAIN)?.rules ?? [];
    const tail = state.bridges.length;
    const tailOk = tail === 0 || sameRules(ebMainLive.slice(ebMainLive.length - tail), ebMain.slice(ebMain.length - tail));
    if (!sameSet(ebMainLive, ebMain) || !tailOk) {
      if (eb.chains.has(EB_MAIN)) ebDeclare.push(`:${EB_MAIN} RETURN`);
      ebLines.push(...ebMain.map((r) => `-A ${EB_MAIN} ${r}`));
    }
    if (!sameSet(ip6.chains.get(IP6_MAIN)?.rules ?? [], ip6Main)) {
      if (ip6.chains.has(IP6_MAIN)) ip6Declare.push(`:${IP6_MAIN} - [0:0]`);
      ip6Lines.push(...ip6Main.map((r) => `-A ${IP6_MAIN} ${r}`));
    }

    // Our chains that are no longer desired (only after the main chains stopped referencing them).
    const wantedDevices = new Set(state.ports.map((p) => p.device as string));
    const wantedBridges = new Set(state.bridges.map((b) => b.name as string));
    for (const chain of eb.chains.keys()) {
      const device = chain.startsWith("V6A-") ? chain.slice(4) : undefined;
      const bridge = chain.startsWith("V6B-") ? chain.slice(4) : undefined;
      if ((device !== undefined && !wantedDevices.has(device)) || (bridge !== undefined && !wantedBridges.has(bridge))) {
        if (!ebDeclare.includes(`:${EB_MAIN} RETURN`)) {
          ebDeclare.push(`:${EB_MAIN} RETURN`);
          ebLines.push(...ebMain.map((r) => `-A ${EB_MAIN} ${r}`));
        }
        ebTail.push(`-F ${chain}`, `-X ${chain}`);
        if (device !== undefined) result.removedPorts.push(device);
      }
    }
    for (const chain of ip6.chains.keys()) {
      const device = chain.startsWith("V6A-") || chain.startsWith("V6N-") ? chain.slice(4) : undefined;
      if (device !== undefined && !wantedDevices.has(device)) {
        ip6Tail.push(`-F ${chain}`, `-X ${chain}`);
        if (!result.removedPorts.includes(device)) result.removedPorts.push(device);
      }
    }

    const ebBatch = [...ebDeclare, ...ebLines, ...ebTail];
    const ip6Batch = [...ip6Declare, ...ip6Lines, ...ip6Tail];
    if (options.dryRun) return { ...result, changed: ebBatch.length + ip6Batch.length > 0 };
    if (ip6Batch.length > 0) {
      await this.ensureBridgeNetfilter();
      await this.restore("ip6", ip6Batch);
    }
    if (ebBatch.length > 0) await this.restore("eb", ebBatch);
    result.changed = ebBatch.length + ip6Batch.length > 0;
    this.known.clear();
    for (const port of state.ports) this.known.set(port.device, port.bridge);
    if (result.changed) {
      this.logger?.info(
        { added: result.addedPorts.length, updated: result.updatedPorts.length, removed: result.removedPorts.length },
        "firewall reconciled",
      );
    }
    return result;
  }

  async upsertPort(input: GuestPort): Promise<void> {
    const port = validatePort(input);
    const knownBridge = this.known.get(port.device);
    const known = knownBridge !== undefined;
    const ip6 = ip6PortLines(port);
    const ip6Dispatch = ip6DispatchRule(port.device, port.bridge);
    const eb = ebPortLines(port);
    const [ebJump, ebReturn] = ebDispatchRules(port.device);
    // Replacing the dispatch rule needs -D, which fails when it is absent; a port this process
    // has not seen is assumed new (reconcile at start makes that true).
    const ip6Variants = [
      [...ip6, `-D ${IP6_MAIN} ${ip6DispatchRule(port.device, knownBridge ?? port.bridge)}`, `-I ${IP6_MAIN} 1 ${ip6Dispatch}`],
      [...ip6, `-I ${IP6_MAIN} 1 ${ip6Dispatch}`],
    ];
    const ebInsert = [`-I ${EB_MAIN} 1 ${ebReturn}`, `-I ${EB_MAIN} 1 ${ebJump}`];
    const ebVariants = [
      [...eb, `-D ${EB_MAIN} ${ebJump}`, `-D ${EB_MAIN} ${ebReturn}`, ...ebInsert],
      [...eb, ...ebInsert],
    ];
    if (!known) {
      ip6Variants.reverse();
      ebVariants.reverse();
    }
    await this.restoreFirst("ip6", ip6Variants);
    await this.restoreFirst("eb", ebVariants);
    this.known.set(port.device, port.bridge);
    this.logger?.info({ port: port.device, bridge: port.bridge }, "port rules installed");
  }

  async removePort(device: string): Promise<void> {
    const name = parseInterfaceName(device, "device");
    const bridge = this.known.get(name);
    const ebChain = ebPortChain(name);
    const ip6Chain = ip6PortChain(name);
    const target = ip6TargetChain(name);
    const [ebJump, ebReturn] = ebDispatchRules(name);
    // Known port: delete exactly what we wrote, without reading anything.
    if (bridge !== undefined) {
      try {
        await this.restore("eb", [`-D ${EB_MAIN} ${ebJump}`, `-D ${EB_MAIN} ${ebReturn}`, `-F ${ebChain}`, `-X ${ebChain}`]);
        await this.restore("ip6", [
          `-D ${IP6_MAIN} ${ip6DispatchRule(name, bridge)}`,
          `-F ${ip6Chain}`,
          `-X ${ip6Chain}`,
          `-F ${target}`,
          `-X ${target}`,
        ]);
        this.known.delete(name);
        this.logger?.info({ port: name }, "port rules removed");
        return;
      } catch {
        // Changed behind our back: fall back to reading what is there.
      }
    }
    const [eb, ip6] = await this.saveBoth();
    const ebBatch = (eb.chains.get(EB_MAIN)?.rules ?? []).filter((r) => r === ebJump || r === ebReturn).map((r) => `-D ${EB_MAIN} ${r}`);
    if (eb.chains.has(ebChain)) ebBatch.push(`-F ${ebChain}`, `-X ${ebChain}`);
    const ip6Batch = (ip6.chains.get(IP6_MAIN)?.rules ?? [])
      .filter((r) => r.startsWith(`-m physdev --physdev-in ${name} `))
      .map((r) => `-D ${IP6_MAIN} ${r}`);
    for (const chain of [ip6Chain, target]) if (ip6.chains.has(chain)) ip6Batch.push(`-F ${chain}`);
    for (const chain of [ip6Chain, target]) if (ip6.chains.has(chain)) ip6Batch.push(`-X ${chain}`);
    if (ebBatch.length > 0) await this.restore("eb", ebBatch);
    if (ip6Batch.length > 0) await this.restore("ip6", ip6Batch);
    this.known.delete(name);
    this.logger?.info({ port: name }, "port rules removed");
  }

  async ensureBridge(input: ManagedBridge): Promise<void> {
    const bridge = validateBridge(input);
    const saved = await this.saveBoth();
    const live = liveState(...saved);
    const bridges = live.bridges.filter((b) => b.name !== bridge.name);
    bridges.push(bridge);
    await this.reconcileSaved(validateState({ bridges, ports: live.ports }), saved);
  }

  async removeBridge(name: string): Promise<void> {
    const bridgeName = parseInterfaceName(name, "bridge.name");
    const saved = await this.saveBoth();
    const live = liveState(...saved);
    const bridges = live.bridges.filter((b) => b.name !== bridgeName);
    await this.reconcileSaved(validateState({ bridges, ports: live.ports.filter((p) => p.bridge !== bridgeName) }), saved);
  }

  async readLive(): Promise<FirewallState> {
    return liveState(...(await this.saveBoth()));
  }

  private async saveBoth(): Promise<[SavedTable, SavedTable]> {
    return Promise.all([this.save("eb"), this.save("ip6")]);
  }

  async counters(): Promise<PortCounters[]> {
    const [eb, ip6] = await this.saveBoth();
    const devices = [...eb.chains.keys()].filter((c) => c.startsWith("V6A-")).map((c) => c.slice(4));
    return devices.sort().map((device) => {
      const sums: Record<string, DropCounter> = {};
      const add = (table: SavedTable, chain: string) => {
        const saved = table.chains.get(chain);
        saved?.rules.forEach((rule, i) => {
          const kind = ruleKind(rule);
          if (kind === undefined) return;
          const counter = saved.counters[i] ?? { packets: 0, bytes: 0 };
          const sum = sums[kind] ?? { packets: 0, bytes: 0 };
          sums[kind] = { packets: sum.packets + counter.packets, bytes: sum.bytes + counter.bytes };
        });
      };
      add(eb, ebPortChain(device));
      add(ip6, ip6PortChain(device));
      add(ip6, ip6TargetChain(device));
      const get = (kind: string) => sums[kind] ?? { packets: 0, bytes: 0 };
      return { device, ra: get("ra"), dhcpv6Server: get("dhcp6"), spoof: get("spoof"), fragment: get("frag"), ipv4: get("ipv4") };
    });
  }

  async removeAll(): Promise<void> {
    const [eb, ip6] = await this.saveBoth();
    const ours = (name: string) => name === EB_MAIN || /^V6[ABN]-/.test(name);
    const ebBatch: string[] = [];
    const ip6Batch: string[] = [];
    for (const hook of HOOKS) {
      if ((eb.chains.get(hook)?.rules ?? []).includes(`-j ${EB_MAIN}`)) ebBatch.push(`-D ${hook} -j ${EB_MAIN}`);
      if ((ip6.chains.get(hook)?.rules ?? []).includes(`-j ${IP6_MAIN}`)) ip6Batch.push(`-D ${hook} -j ${IP6_MAIN}`);
    }
    for (const chain of eb.chains.keys()) if (ours(chain)) ebBatch.push(`-F ${chain}`);
    for (const chain of eb.chains.keys()) if (ours(chain)) ebBatch.push(`-X ${chain}`);
    for (const chain of ip6.chains.keys()) if (ours(chain)) ip6Batch.push(`-F ${chain}`);
    for (const chain of ip6.chains.keys()) if (ours(chain)) ip6Batch.push(`-X ${chain}`);
    if (ebBatch.length > 0) await this.restore("eb", ebBatch);
    if (ip6Batch.length > 0) await this.restore("ip6", ip6Batch);
    this.known.clear();
  }

  private async save(which: "eb" | "ip6"): Promise<SavedTable> {
    const command = which === "eb" ? this.tools.ebSave : this.tools.ip6Save;
    const args = which === "eb" ? ["-c", "-t", "filter"] : ["-c", "-t", "filter"];
    const { stdout } = await run(command, args, { netns: this.netns });
    return parseSave(stdout);
  }

  private async restore(which: "eb" | "ip6", lines: readonly string[]): Promise<void> {
    const tool = which === "eb" ? this.tools.ebRestore : this.tools.ip6Restore;
    const toolArgs = which === "eb" ? ["--noflush"] : ["-w", "5", "--noflush"];
    const [command, args] =
      this.lockFile === undefined ? [tool, toolArgs] : [LOCK_PYTHON, ["-c", FCNTL_LOCK_EXEC, this.lockFile, tool, ...toolArgs]];
    try {
      await run(command, args, { input: restoreBatch(lines), netns: this.netns });
    } catch (error) {
      const detail = error instanceof CommandError ? error.stderr.trim().split("\n").slice(0, 4).join("; ") : String(error);
      throw new V6Error("firewall_failure", `${tool} batch failed: ${detail}`, { cause: error });
    }
  }

  /** Tries each batch in turn; the first that applies wins (each attempt is atomic). */
  private async restoreFirst(which: "eb" | "ip6", variants: readonly (readonly string[])[]): Promise<void> {
    let last: unknown;
    for (const lines of variants) {
      try {
        await this.restore(which, lines);
        return;
      } catch (error) {
        last = error;
      }
    }
    throw last;
  }

  /** Bridged IPv6 reaches ip6tables only with this per-namespace switch on. */
  private async ensureBridgeNetfilter(): Promise<void> {
    await run("sysctl", ["-q", "-w", "net.bridge.bridge-nf-call-ip6tables=1", "net.bridge.bridge-nf-call-iptables=1"], {
      netns: this.netns,
    });
  }
}

export async function detectTools(netns?: string): Promise<XtablesTools> {
  const { stdout } = await run("ebtables", ["--version"], { netns });
  if (/legacy/.test(stdout)) {
    return {
      flavour: "legacy",
      ebRestore: "ebtables-legacy-restore",
      ebSave: "ebtables-legacy-save",
      ip6Restore: "ip6tables-legacy-restore",
      ip6Save: "ip6tables-legacy-save",
    };
  }
  return {
    flavour: "nft",
    ebRestore: "ebtables-nft-restore",
    ebSave: "ebtables-nft-save",
    ip6Restore: "ip6tables-nft-restore",
    ip6Save: "ip6tables-nft-save",
  };
}

/** Batch lines that make `-j <target>` the first rule of `hook` (none when it already is). */
function jumpFirst(rules: readonly string[], hook: string, target: string): string[] {
  const jump = `-j ${target}`;
  if (rules[0] === jump) return [];
  return [...rules.filter((rule) => rule === jump).map(() => `-D ${hook} ${jump}`), `-I ${hook} 1 ${jump}`];
}

function sameRules(live: readonly string[] | undefined, wanted: readonly string[]): boolean {
  return live !== undefined && live.length === wanted.length && wanted.every((rule, i) => live[i] === rule);
}

function sameSet(live: readonly string[], wanted: readonly string[]): boolean {
  if (live.length !== wanted.length) return false;
  const set = new Set(live);
  return wanted.every((rule) => set.has(rule));
}

/** Our bridges and ports as the saved tables show them. */
function liveState(eb: SavedTable, ip6: SavedTable): FirewallState {
  const bridges: ManagedBridge[] = [];
  for (const [chain, { rules }] of eb.chains) {
    if (!chain.startsWith("V6B-")) continue;
    const bridge = { name: chain.slice(4), trustedPorts: [] as string[] } as unknown as ManagedBridge;
    const patterns: string[] = [];
    for (const rule of rules) {
      const trusted = /^-i (\S+) -j RETURN$/.exec(rule);
      const guest = /^-i (\S+)\+ -j DROP$/.exec(rule);
      if (trusted) (bridge.trustedPorts as string[]).push(trusted[1] as string);
      if (guest) patterns.push(`${guest[1]}*`);
    }
    if (patterns.length > 0) bridge.guestPortPatterns = patterns;
    bridges.push(bridge);
  }
  const ports: GuestPort[] = [];
  for (const rule of ip6.chains.get(IP6_MAIN)?.rules ?? []) {
    const match = /--physdev-in (\S+) .*bridge=(\S+?)"? -j/.exec(rule);
    if (!match) continue;
    const device = match[1] as string;
    const ebRules = eb.chains.get(ebPortChain(device))?.rules ?? [];
    const addresses = (ip6.chains.get(ip6PortChain(device))?.rules ?? []).flatMap((r) => {
      const source = /^-s (\S+)\/128 -j RETURN$/.exec(r);
      return source ? [source[1] as string] : [];
    });
    ports.push({
      device,
      bridge: match[2],
      mac: /^-s ! (\S+) -j DROP$/.exec(ebRules[0] ?? "")?.[1] ?? "",
      linkLocals: addresses.filter((a) => a.startsWith("fe80:")),
      ipv6: addresses.filter((a) => !a.startsWith("fe80:")),
      ipv4: ebRules.flatMap((r) => /^-p IPv4 --ip-src (\S+) -j RETURN$/.exec(r)?.[1] ?? []).filter((a) => a !== "0.0.0.0"),
    } as GuestPort);
  }
  return { bridges, ports };
}

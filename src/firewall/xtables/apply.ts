import { parseInterfaceName } from "../../addressing/index.js";
import { V6Error } from "../../errors.js";
import type { Logger } from "../../log.js";
import {
  type ApplyResult,
  byDevice,
  type DropReason,
  type Firewall,
  type FirewallState,
  type GuestPort,
  type ManagedBridge,
  type PortCounters,
  zeroCounters,
} from "../model.js";
import { nftLeftovers, removeNftLeftovers } from "../nft/leftovers.js";
import { probeNftCapabilities } from "../nft/probe.js";
import { validateBridge, validatePort, validateState } from "../validate.js";
import {
  EB_MAIN,
  EB_TABLE,
  ebDispatchRules,
  ebPortChain,
  ebPortLines,
  ebPortRules,
  ebRouterChain,
  ebRouterRules,
  type XRule,
} from "./ebtables.js";
import {
  IP6_MAIN,
  IP6_TABLE,
  ip6DispatchRule,
  ip6PortChain,
  ip6PortLines,
  ip6PortRules,
  ip6RouterChain,
  ip6RouterRules,
  ip6TargetChain,
  ip6TargetRules,
} from "./ip6tables.js";
import { firstLayoutLeftovers, removeCurrentLayout, removeFirstLayout } from "./leftovers.js";
import type { SavedTable } from "./live.js";
import { liveState } from "./live-state.js";
import { planXtables } from "./plan.js";
import { detectTools, XtablesRunner, type XtablesTools } from "./tools.js";

export { XAPI_EBTABLES_LOCK } from "./tools.js";

export interface XtablesFirewallOptions {
  netns?: string;
  logger?: Logger;
  /**
   * Hold this file's POSIX (fcntl) lock while a batch applies: xenopsd's `setup-vif-rules`
   * rewrites FORWARD under `/var/lock/ebtables.lock` on every VIF plug (docs/xenserver.md).
   */
  lockFile?: string;
}

/**
 * The ebtables + ip6tables backend (ebtables.ts, ip6tables.ts). Every change is one
 * `ebtables-restore --noflush` batch and one `ip6tables-restore -w --noflush` batch, each
 * atomic for its table. The two run at the same time: each tool drops a guest port it has no
 * rules for (ebtables by the bridge's guest-port patterns or bridge metadata, ip6tables by
 * `-i <bridge>`), so whichever commits first, a port is never judged by neither; and the two
 * processes then wait for the kernel's release of their transaction (one RCU grace period at
 * exit, 8-20 ms on an untuned kernel) at the same time instead of one after the other.
 */
export class XtablesFirewall implements Firewall {
  readonly backend = "xtables" as const;
  private readonly logger: Logger | undefined;
  private readonly run: XtablesRunner;
  /** Ports whose dispatch rules this process knows exist (after reconcile or upsert). */
  private readonly known = new Map<string, string>();
  private otherBackendChecked = false;

  private constructor(
    readonly tools: XtablesTools,
    private readonly bridgeMeta: boolean,
    private readonly netns: string | undefined,
    options: XtablesFirewallOptions,
  ) {
    this.run = new XtablesRunner(tools, netns, options.lockFile);
    this.logger = options.logger?.child({ component: "firewall", backend: "xtables", flavour: tools.flavour });
  }

  static async create(options: XtablesFirewallOptions = {}): Promise<XtablesFirewall> {
    const tools = await detectTools(options.netns);
    // Legacy ebtables has --logical-in natively; the nf_tables flavour needs bridge meta.
    const bridgeMeta =
      tools.flavour === "legacy" ? true : (await probeNftCapabilities(options.netns).catch(() => ({ bridgeMeta: false }))).bridgeMeta;
    return new XtablesFirewall(tools, bridgeMeta, options.netns, options);
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
    const plan = planXtables(state, eb, ip6, this.bridgeMeta);
    const result = plan.result;
    // The first layout (filter tables, FORWARD/INPUT) goes once today's is in place.
    const firstLayout = await firstLayoutLeftovers(this.run);
    if (options.dryRun) return { ...result, changed: result.changed || firstLayout.length > 0 };
    if (plan.ip6.length > 0) await this.run.ensureBridgeNetfilter();
    await this.both(plan.eb, plan.ip6);
    if (firstLayout.length > 0) {
      await removeFirstLayout(this.run);
      result.changed = true;
    }
    this.known.clear();
    for (const port of state.ports) this.known.set(port.device, port.bridge);
    if (result.changed) {
      this.logger?.info(
        { added: result.addedPorts.length, updated: result.updatedPorts.length, removed: result.removedPorts.length },
        "firewall reconciled",
      );
    }
    if (!this.otherBackendChecked) result.changed = (await this.removeOtherBackend()) || result.changed;
    return result;
  }

  async upsertPort(input: GuestPort): Promise<void> {
    const port = validatePort(input);
    const knownBridge = this.known.get(port.device);
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
    if (knownBridge === undefined) {
      ip6Variants.reverse();
      ebVariants.reverse();
    }
    await Promise.all([this.run.restoreFirst(IP6_TABLE, ip6Variants), this.run.restoreFirst(EB_TABLE, ebVariants)]);
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
        await this.both(
          [`-D ${EB_MAIN} ${ebJump}`, `-D ${EB_MAIN} ${ebReturn}`, `-F ${ebChain}`, `-X ${ebChain}`],
          [`-D ${IP6_MAIN} ${ip6DispatchRule(name, bridge)}`, `-F ${ip6Chain}`, `-X ${ip6Chain}`, `-F ${target}`, `-X ${target}`],
        );
        this.known.delete(name);
        this.logger?.info({ port: name }, "port rules removed");
        return;
      } catch {
        // Changed behind our back (or half of it applied): fall back to reading what is there.
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
    await this.both(ebBatch, ip6Batch);
    this.known.delete(name);
    this.logger?.info({ port: name }, "port rules removed");
  }

  async ensureBridge(input: ManagedBridge): Promise<void> {
    const bridge = validateBridge(input);
    const saved = await this.saveBoth();
    const live = liveState(...saved);
    const bridges = [...live.bridges.filter((b) => b.name !== bridge.name), bridge];
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

  /** Per port and reason, the sums of our DROP rules' counters (each rule knows its reason as rendered). */
  async counters(): Promise<PortCounters[]> {
    const [eb, ip6] = await this.saveBoth();
    const live = liveState(eb, ip6);
    const result: PortCounters[] = [];
    const add = (counters: PortCounters, table: SavedTable, chain: string, rendered: readonly XRule[]) => {
      const reasons = new Map(rendered.filter((r) => r.reason !== undefined).map((r) => [r.text, r.reason as DropReason]));
      const saved = table.chains.get(chain);
      saved?.rules.forEach((rule, i) => {
        const reason = reasons.get(rule);
        const count = saved.counters[i];
        if (reason === undefined || count === undefined) return;
        counters[reason] = { packets: counters[reason].packets + count.packets, bytes: counters[reason].bytes + count.bytes };
      });
    };
    for (const port of live.ports) {
      const counters = zeroCounters(port.device);
      add(counters, eb, ebPortChain(port.device), ebPortRules(port));
      add(counters, ip6, ip6PortChain(port.device), ip6PortRules(port));
      add(counters, ip6, ip6TargetChain(port.device), ip6TargetRules(port));
      result.push(counters);
    }
    for (const bridge of live.bridges) {
      for (const uplink of bridge.router === undefined ? [] : bridge.trustedPorts) {
        const counters = zeroCounters(uplink);
        add(counters, eb, ebRouterChain(uplink), ebRouterRules(bridge));
        add(counters, ip6, ip6RouterChain(uplink), ip6RouterRules(bridge));
        if (counters.rogueRouter.packets > 0) result.push(counters);
      }
    }
    return result.sort(byDevice);
  }

  async removeAll(): Promise<void> {
    await removeCurrentLayout(this.run);
    await removeFirstLayout(this.run);
    this.known.clear();
  }

  async otherBackendRules(): Promise<string[]> {
    return nftLeftovers(this.netns);
  }

  /** After our rules are in place, the first reconcile removes the nft backend's table (an earlier run). */
  private async removeOtherBackend(): Promise<boolean> {
    const leftovers = await nftLeftovers(this.netns);
    if (leftovers.length > 0) {
      try {
        await removeNftLeftovers(this.netns);
      } catch (error) {
        throw new V6Error(
          "firewall_failure",
          `the nft backend's v6agent rules are live (${leftovers.join("; ")}) and could not be removed, so the agent does not start with two rule sets: ${(error as Error).message}`,
          { cause: error },
        );
      }
      this.logger?.warn({ removed: leftovers }, "removed the nft backend's table left by an earlier run");
    }
    this.otherBackendChecked = true;
    return leftovers.length > 0;
  }

  private saveBoth(): Promise<[SavedTable, SavedTable]> {
    return Promise.all([this.run.save(EB_TABLE), this.run.save(IP6_TABLE)]);
  }

  /** Both batches at once (see the class comment); the first failure is thrown after both settled. */
  private async both(eb: readonly string[], ip6: readonly string[]): Promise<void> {
    const outcomes = await Promise.allSettled([this.run.restore(EB_TABLE, eb), this.run.restore(IP6_TABLE, ip6)]);
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
    if (failed !== undefined) throw failed.reason;
  }
}

import { parseInterfaceName } from "../../addressing/index.js";
import { V6Error } from "../../errors.js";
import type { Logger } from "../../log.js";
import {
  type ApplyResult,
  byDevice,
  dropReasons,
  type Firewall,
  type FirewallState,
  type GuestPort,
  type ManagedBridge,
  type PortCounters,
  zeroCounters,
} from "../model.js";
import { validateBridge, validatePort, validateState } from "../validate.js";
import { removeXtablesLeftovers, xtablesLeftovers } from "../xtables/leftovers.js";
import { Believed, batches, stateKey } from "./believed.js";
import { bridgesChainRules, renderBridge, renderBridgeRemoval, renderBridgesChain } from "./bridges.js";
import { isNotFound, NftError, nft, rulesetGeneration } from "./libnftables.js";
import { type NftLiveTable, parseNftListing } from "./live.js";
import { liveState } from "./live-state.js";
import { dropObjects, type NftCapabilities, PORT_SETS, TABLE } from "./names.js";
import {
  planReconcile,
  renderElementsBlock,
  renderPortChange,
  renderPortRemoval,
  renderState,
  renderUplinkChange,
  sameComments,
} from "./plan.js";
import { probeNftCapabilities } from "./probe.js";
import { renderSkeleton, renderTableRemoval } from "./skeleton.js";

export { PORTS_PER_TRANSACTION } from "./believed.js";

export interface NftFirewallOptions {
  netns?: string;
  logger?: Logger;
  capabilities?: NftCapabilities;
}

/**
 * The nftables backend. Every port change is one transaction of set-element adds and deletes
 * (run in-process by libnftables through a kept context), so a port is never seen unfiltered or
 * half-filtered, and its cost does not grow with the number of ports: no rule is written, so the
 * kernel validates no chain, and libnftables fetches set declarations only. What the table holds
 * is remembered (`Believed`) so a port change needs no listing; only reconcile lists the table,
 * and only when the ruleset generation says someone may have changed it.
 */
export class NftFirewall implements Firewall {
  readonly backend = "nft" as const;
  private readonly netns: string | undefined;
  private readonly logger: Logger | undefined;
  private capabilities: NftCapabilities | undefined;
  private readonly believed: Believed;
  /** Whether this instance has already looked for (and removed) the xtables backend's rules. */
  private otherBackendChecked = false;

  constructor(options: NftFirewallOptions = {}) {
    this.netns = options.netns;
    this.logger = options.logger?.child({ component: "firewall", backend: "nft" });
    this.capabilities = options.capabilities;
    this.believed = new Believed(() => rulesetGeneration(this.netns).catch(() => undefined));
  }

  async reconcile(desired: FirewallState, options: { dryRun?: boolean } = {}): Promise<ApplyResult> {
    const state = validateState(desired);
    const caps = await this.caps();
    const result: ApplyResult = { changed: false, addedPorts: [], updatedPorts: [], removedPorts: [] };
    // Read before the listing: any commit after this read changes it.
    const generation = await this.believed.generation();
    const key = stateKey(state);
    if (this.believed.isVerified(generation, key)) return this.afterReconcile(result, options);
    const live = await this.readTable();
    if (live === undefined || live.olderLayout.length > 0) {
      result.changed = true;
      result.addedPorts = state.ports.map((p) => p.device);
      if (options.dryRun) return result;
      if (live === undefined) {
        // No table: the structure with the first ports, then the other ports in batches. Until
        // its batch commits, a guest port is an unknown port of a managed bridge: dropped.
        const [first = [], ...rest] = batches(state.ports);
        const transactions = [renderState({ ...state, ports: first }, caps), ...rest.map((ports) => renderElementsBlock(ports).join("\n"))];
        await this.commitAll(transactions, generation, state, key);
      } else {
        // An older layout (per-port chains) is replaced whole, in one transaction, so no port
        // that it protected ever loses its rules or its traffic.
        await this.commitAll([[renderTableRemoval(), renderState(state, caps)].join("\n")], generation, state, key);
      }
      this.logger?.info({ ports: state.ports.length, bridges: state.bridges.length }, "firewall table created");
      return this.afterReconcile(result, options);
    }
    const plan = planReconcile(state, live, caps);
    for (const port of plan.ports) {
      ({ added: result.addedPorts, updated: result.updatedPorts, removed: result.removedPorts })[port.change].push(port.device);
    }
    const portLines = plan.ports.map((p) => p.lines.join("\n"));
    if (plan.structure.length + portLines.length + plan.uplinks.length + plan.tail.length === 0) {
      this.believed.verify(generation, state, key);
      return this.afterReconcile(result, options);
    }
    result.changed = true;
    if (options.dryRun) return result;
    // Structure first, then port changes (in batches when many), then what goes last.
    const groups = batches(portLines);
    const transactions =
      groups.length <= 1
        ? [[...plan.structure, ...plan.uplinks, ...portLines, ...plan.tail]]
        : [[...plan.structure, ...plan.uplinks, ...(groups[0] ?? [])], ...groups.slice(1, -1), [...(groups.at(-1) ?? []), ...plan.tail]];
    await this.commitAll(
      transactions.map((lines) => lines.join("\n")),
      generation,
      state,
      key,
    );
    this.logger?.info(
      { added: result.addedPorts.length, updated: result.updatedPorts.length, removed: result.removedPorts.length },
      "firewall reconciled",
    );
    return this.afterReconcile(result, options);
  }

  async upsertPort(input: GuestPort): Promise<void> {
    const port = validatePort(input);
    await this.learn();
    const before = this.believed.port(port.device);
    // The agent re-asserts a VM's ports on each of its hypervisor events: a port the verified
    // table already holds, unchanged, costs a generation read instead of a commit.
    if (before !== undefined && JSON.stringify(before) === JSON.stringify(port) && (await this.believed.isCurrent())) return;
    await this.believed.carry(
      () => this.apply(renderPortChange(before, port).join("\n"), "is the bridge managed yet (ensureBridge or reconcile)?"),
      (view) => view.ports.set(port.device, port),
    );
    this.logger?.info({ port: port.device, bridge: port.bridge }, "port rules installed");
  }

  async removePort(device: string): Promise<void> {
    const name = parseInterfaceName(device, "device");
    try {
      await this.learn();
      await this.believed.carry(
        async () => {
          await nft(renderPortRemoval(name, this.believed.port(name)).join("\n"), { netns: this.netns });
        },
        (view) => view.ports.delete(name),
      );
    } catch (error) {
      // No table means no port: removal is idempotent.
      if (isNotFound(error) && !(await this.tableExists())) return;
      throw firewallFailure(error);
    }
    this.logger?.info({ port: name }, "port rules removed");
  }

  async ensureBridge(input: ManagedBridge): Promise<void> {
    const bridge = validateBridge(input);
    const caps = await this.caps();
    const live = await this.readTable();
    const state = live === undefined ? { bridges: [], ports: [] } : liveState(live);
    const before = state.bridges.find((b) => b.name === bridge.name);
    const names = new Set([...state.bridges.map((b) => b.name as string), bridge.name]);
    const parts = [
      live === undefined ? renderSkeleton() : "",
      renderBridge(bridge, caps),
      renderBridgesChain([...names]),
      ...renderUplinkChange(before, bridge),
    ];
    await this.believed.carry(
      () => this.apply(parts.filter((p) => p !== "").join("\n")),
      (view) => {
        view.bridges = [...view.bridges.filter((b) => b.name !== bridge.name), bridge];
      },
    );
    this.logger?.info({ bridge: bridge.name, router: bridge.router?.mac }, "bridge managed");
  }

  /** Stops managing a bridge: its chain, sets, router guard and the rules of every port on it go in one transaction. */
  async removeBridge(name: string): Promise<void> {
    const bridge = parseInterfaceName(name, "name");
    const live = await this.readTable();
    if (live === undefined) return;
    const state = liveState(live);
    const names = state.bridges.map((b) => b.name as string).filter((n) => n !== bridge);
    const ports = state.ports.filter((p) => p.bridge === bridge);
    const lines = [
      renderBridgesChain(names),
      ...ports.flatMap((p) => renderPortRemoval(p.device, p)),
      ...renderUplinkChange(
        state.bridges.find((b) => b.name === bridge),
        undefined,
      ),
    ];
    if (live.chains.has(`bridge_${bridge}`)) lines.push(renderBridgeRemoval(bridge));
    await this.believed.carry(
      () => this.apply(lines.join("\n")),
      (view) => {
        view.bridges = view.bridges.filter((b) => b.name !== bridge);
        for (const port of ports) view.ports.delete(port.device);
      },
    );
    this.logger?.info({ bridge, ports: ports.length }, "bridge no longer managed");
  }

  async readLive(): Promise<FirewallState> {
    const live = await this.readTable();
    return live === undefined ? { bridges: [], ports: [] } : liveState(live);
  }

  /**
   * Reads `guest_ports` and the `drops_*` sets only, one listing each (nft 1.0.6 cannot run
   * several list commands in one call): guest ports, and trusted ports that dropped rogue
   * router messages.
   */
  async counters(): Promise<PortCounters[]> {
    const guests = await this.listSet(PORT_SETS.guests);
    if (guests === undefined) return [];
    const counters = new Map<string, PortCounters>();
    for (const key of guests.sets.get(PORT_SETS.guests) ?? []) {
      const device = /^"([^"]*)"/.exec(key)?.[1] ?? key;
      counters.set(device, zeroCounters(device));
    }
    for (const reason of dropReasons) {
      const set = dropObjects(reason).set;
      for (const [device, count] of (await this.listSet(set))?.elementCounters.get(set) ?? []) {
        const entry = counters.get(device) ?? (reason === "rogueRouter" ? zeroCounters(device) : undefined);
        if (entry === undefined) continue;
        entry[reason] = count;
        counters.set(device, entry);
      }
    }
    return [...counters.values()].sort(byDevice);
  }

  async removeAll(): Promise<void> {
    await this.believed.carry(
      () => this.apply(renderTableRemoval()),
      (view) => {
        view.bridges = [];
        view.ports.clear();
      },
    );
  }

  async otherBackendRules(): Promise<string[]> {
    return xtablesLeftovers(this.netns);
  }

  /** The live table, or undefined when it does not exist. */
  async readTable(): Promise<NftLiveTable | undefined> {
    try {
      return parseNftListing(await nft(`list table bridge ${TABLE}`, { netns: this.netns }));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw firewallFailure(error);
    }
  }

  /** Whether the live `bridges` chain jumps to exactly these bridges (diag's cheap check). */
  static bridgesChainMatches(live: NftLiveTable, names: readonly string[]): boolean {
    return sameComments(live.chains.get("bridges"), bridgesChainRules(names));
  }

  /**
   * After our own rules are in place, the first reconcile of this instance removes what the
   * xtables backend left (an earlier run with the other backend): two rule sets must not judge
   * the same ports. A dry run only reports it (`diag` has its own check).
   */
  private async afterReconcile(result: ApplyResult, options: { dryRun?: boolean }): Promise<ApplyResult> {
    if (options.dryRun || this.otherBackendChecked) return result;
    const leftovers = await xtablesLeftovers(this.netns);
    if (leftovers.length > 0) {
      try {
        await removeXtablesLeftovers(this.netns);
      } catch (error) {
        throw new V6Error(
          "firewall_failure",
          `the xtables backend's v6agent rules are live (${leftovers.join("; ")}) and could not be removed, so the agent does not start with two rule sets: ${(error as Error).message}`,
          { cause: error },
        );
      }
      this.logger?.warn({ removed: leftovers }, "removed the xtables backend's rules left by an earlier run");
      result.changed = true;
    }
    this.otherBackendChecked = true;
    return result;
  }

  /** Makes sure what the table holds is known (listed once, when nothing is yet). */
  private async learn(): Promise<void> {
    if (this.believed.known()) return;
    const generation = await this.believed.generation();
    const live = await this.readTable();
    this.believed.verify(generation, live === undefined ? { bridges: [], ports: [] } : liveState(live));
  }

  private async listSet(set: string): Promise<NftLiveTable | undefined> {
    try {
      return parseNftListing(await nft(`list set bridge ${TABLE} ${set}`, { netns: this.netns }));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw firewallFailure(error);
    }
  }

  private async tableExists(): Promise<boolean> {
    const output = await nft("list tables bridge", { netns: this.netns });
    return output.split("\n").some((line) => line.trim() === `table bridge ${TABLE}`);
  }

  private async caps(): Promise<NftCapabilities> {
    this.capabilities ??= await probeNftCapabilities(this.netns);
    return this.capabilities;
  }

  /** Commits `transactions` in order; the table then holds `state` (see Believed.committed). */
  private async commitAll(
    transactions: readonly string[],
    generation: number | undefined,
    state: FirewallState,
    key: string,
  ): Promise<void> {
    for (const script of transactions) await this.apply(script);
    await this.believed.committed(generation, transactions.length, state, key);
  }

  private async apply(script: string, hint?: string): Promise<void> {
    try {
      await nft(script, { netns: this.netns });
    } catch (error) {
      throw firewallFailure(error, hint);
    }
  }
}

function firewallFailure(error: unknown, hint?: string): V6Error {
  if (error instanceof V6Error) return error;
  const detail = error instanceof NftError ? error.stderr.trim().split("\n").slice(0, 6).join("; ") : String(error);
  return new V6Error("firewall_failure", `nft transaction failed${hint ? ` (${hint})` : ""}: ${detail}`, { cause: error });
}

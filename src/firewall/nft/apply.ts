import { parseInterfaceName } from "../../addressing/index.js";
import { V6Error } from "../../errors.js";
import type { Logger } from "../../log.js";
import {
  type ApplyResult,
  byDevice,
  type DropCounter,
  type Firewall,
  type FirewallState,
  type GuestPort,
  type ManagedBridge,
  type PortCounters,
} from "../model.js";
import { validateBridge, validatePort, validateState } from "../validate.js";
import { isNotFound, NftError, nft, rulesetGeneration } from "./libnftables.js";
import { type NftLiveTable, parseNftListing } from "./live.js";
import {
  bridgeObjects,
  type CounterKind,
  counterKinds,
  dropObjects,
  type NftCapabilities,
  portEntryComment,
  portObjects,
  renderBridge,
  renderBridgeRemoval,
  renderBridgeRules,
  renderBridgesChain,
  renderBridgesChainRules,
  renderDropCountRemoval,
  renderPortRemoval,
  renderPortRules,
  renderPortsBlock,
  renderPortUpsert,
  renderSkeleton,
  renderSkeletonRules,
  renderState,
  renderTableRemoval,
  ruleComment,
  TABLE,
} from "./render.js";

/** The set of every port that has a chain: its members go on to the shared `guest` chain. */
const GUEST_PORTS = "guest_ports";

export interface NftFirewallOptions {
  netns?: string;
  logger?: Logger;
  capabilities?: NftCapabilities;
}

/**
 * Ports per nft transaction when many change at once (a new table at startup, a table flushed by
 * hand). libnftables holds a whole transaction's parse in memory, ~50 MB for 1,000 ports, all of
 * it inside the agent's RSS; batches keep that peak to a fifth. Each port's chain, map entry and
 * set element stay in one transaction, so no port is ever half-protected.
 */
export const PORTS_PER_TRANSACTION = 200;

/** A desired state as a key that does not depend on the order its ports are listed in. */
function stateKey(state: FirewallState): string {
  return JSON.stringify({ ...state, ports: [...state.ports].sort(byDevice) });
}

function batches<T>(items: readonly T[]): T[][] {
  const result: T[][] = [];
  for (let start = 0; start < items.length; start += PORTS_PER_TRANSACTION) result.push(items.slice(start, start + PORTS_PER_TRANSACTION));
  return result;
}

/**
 * The nftables backend: every port change is one nft transaction (run in-process by libnftables),
 * so a port is never seen unfiltered or half-filtered. Port changes touch only that port's
 * objects; only reconcile reads the whole table, and only when something else may have changed it.
 */
export class NftFirewall implements Firewall {
  readonly backend = "nft" as const;
  private readonly netns: string | undefined;
  private readonly logger: Logger | undefined;
  private capabilities: NftCapabilities | undefined;
  /**
   * What the table is known to hold, and the ruleset generation at which it did: set by a
   * reconcile that found nothing to do (generation read before its listing), and carried
   * forward by our own commits when the generation moved by exactly their number (nobody else
   * committed in between). While the generation is unchanged, the table need not be listed
   * again: 1.6 MB of text at 1,000 ports, and ~40 MB of libnftables cache inside our RSS.
   */
  private verified: { generation: number; state: FirewallState; key: string } | undefined;

  constructor(options: NftFirewallOptions = {}) {
    this.netns = options.netns;
    this.logger = options.logger?.child({ component: "firewall", backend: "nft" });
    this.capabilities = options.capabilities;
  }

  async reconcile(desired: FirewallState, options: { dryRun?: boolean } = {}): Promise<ApplyResult> {
    const state = validateState(desired);
    const caps = await this.caps();
    const result: ApplyResult = { changed: false, addedPorts: [], updatedPorts: [], removedPorts: [] };
    // Read before the listing: any commit after this read changes it.
    const generation = await rulesetGeneration(this.netns).catch(() => undefined);
    const desiredKey = stateKey(state);
    if (generation !== undefined && this.verified?.generation === generation && this.verified.key === desiredKey) return result;
    this.verified = undefined;
    const live = await this.readTable();
    if (live === undefined || live.otherMaps.length > 0) {
      if (options.dryRun) return { ...result, changed: true, addedPorts: state.ports.map((p) => p.device) };
      if (live === undefined) {
        // No table: the structure with the first ports, then the other ports in batches. Until
        // its batch commits, a guest port is an unknown port of a managed bridge: dropped.
        const [first = [], ...rest] = batches(state.ports);
        await this.commitAll([renderState({ ...state, ports: first }, caps), ...rest.map(renderPortsBlock)], generation, state, desiredKey);
      } else {
        // A table of an older layout (counter maps) is replaced whole, in one transaction, so
        // no port that it protected ever loses its rules or its traffic.
        await this.commitAll([[renderTableRemoval(), renderState(state, caps)].join("\n")], generation, state, desiredKey);
      }
      result.changed = true;
      result.addedPorts = state.ports.map((p) => p.device);
      this.logger?.info({ ports: state.ports.length, bridges: state.bridges.length }, "firewall table created");
      return result;
    }
    // Structure first, then port upserts (in batches when many), then removals.
    const parts: string[] = [];
    const upserts: string[] = [];
    const removals: string[] = [];
    const skeletonOk =
      live.hasPortsMap &&
      live.sets.has(GUEST_PORTS) &&
      counterKinds.every((kind) => live.elementCounters.has(dropObjects(kind).set)) &&
      renderSkeletonRules().every(({ chain, rules }) => sameComments(live.chains.get(chain), rules)) &&
      live.chains.has("bridges");
    if (!skeletonOk) parts.push(renderSkeleton());
    for (const bridge of state.bridges) {
      if (!bridgeMatches(bridge, live, caps)) parts.push(renderBridge(bridge, caps));
    }
    const bridgeNames = state.bridges.map((b) => b.name as string);
    if (!sameComments(live.chains.get("bridges"), renderBridgesChainRules(bridgeNames))) parts.push(renderBridgesChain(bridgeNames));
    const desiredDevices = new Set(state.ports.map((p) => p.device as string));
    const guestPorts = new Set(live.sets.get(GUEST_PORTS) ?? []);
    for (const port of state.ports) {
      if (guestPorts.has(port.device) && portMatches(port, live)) continue;
      upserts.push(renderPortUpsert(port));
      const exists = live.ports.has(port.device) || live.chains.has(portObjects(port.device).chain);
      (exists ? result.updatedPorts : result.addedPorts).push(port.device);
    }
    const liveDevices = new Set([
      ...live.ports.keys(),
      ...guestPorts,
      ...[...live.chains.keys()].filter((c) => c.startsWith("port_")).map((c) => c.slice(5)),
    ]);
    for (const device of liveDevices) {
      if (desiredDevices.has(device)) continue;
      removals.push(renderPortRemoval(device));
      result.removedPorts.push(device);
    }
    // Counts of ports that are gone (a port removed by hand, say) are forgotten.
    for (const kind of counterKinds) {
      for (const device of live.elementCounters.get(dropObjects(kind).set)?.keys() ?? []) {
        if (!desiredDevices.has(device) && !liveDevices.has(device)) removals.push(renderDropCountRemoval(kind, device));
      }
    }
    const wanted = new Set(bridgeNames);
    for (const chain of live.chains.keys()) {
      if (chain.startsWith("bridge_") && !wanted.has(chain.slice(7))) removals.push(renderBridgeRemoval(chain.slice(7)));
    }
    if (parts.length + upserts.length + removals.length === 0) {
      if (generation !== undefined) this.verified = { generation, state, key: desiredKey };
      return result;
    }
    result.changed = true;
    if (options.dryRun) return result;
    const upsertBatches = batches(upserts);
    const transactions =
      upsertBatches.length <= 1
        ? [[...parts, ...upserts, ...removals]]
        : [[...parts, ...(upsertBatches[0] ?? [])], ...upsertBatches.slice(1, -1), [...(upsertBatches.at(-1) ?? []), ...removals]];
    await this.commitAll(
      transactions.map((lines) => lines.join("\n")),
      generation,
      state,
      desiredKey,
    );
    this.logger?.info(
      { added: result.addedPorts.length, updated: result.updatedPorts.length, removed: result.removedPorts.length },
      "firewall reconciled",
    );
    return result;
  }

  async upsertPort(input: GuestPort): Promise<void> {
    const port = validatePort(input);
    // The agent re-asserts a VM's ports on each of its hypervisor events: a port the verified
    // table already holds, unchanged, costs a generation read instead of a commit.
    if (await this.holds(port)) return;
    await this.carryVerified(
      () => this.apply(renderPortUpsert(port), "is the bridge managed yet (ensureBridge or reconcile)?"),
      (ports) => [...ports.filter((p) => p.device !== port.device), port],
    );
    this.logger?.info({ port: port.device, bridge: port.bridge }, "port rules installed");
  }

  async removePort(device: string): Promise<void> {
    const name = parseInterfaceName(device, "device");
    try {
      await this.carryVerified(
        async () => {
          await nft(renderPortRemoval(name), { netns: this.netns });
        },
        (ports) => ports.filter((p) => p.device !== name),
      );
    } catch (error) {
      // No table means no port: removal is idempotent (and must not list the whole ruleset).
      if (isNotFound(error) && !(await this.tableExists())) return;
      throw firewallFailure(error);
    }
    this.logger?.info({ port: name }, "port rules removed");
  }

  async ensureBridge(input: ManagedBridge): Promise<void> {
    const bridge = validateBridge(input);
    const caps = await this.caps();
    const live = await this.liveBridgeNames();
    const names = new Set(live ?? []);
    const parts: string[] = [];
    if (live === undefined) parts.push(renderSkeleton());
    names.add(bridge.name);
    parts.push(renderBridge(bridge, caps), renderBridgesChain([...names]));
    await this.apply(parts.join("\n"));
    this.logger?.info({ bridge: bridge.name }, "bridge managed");
  }

  /** Stops managing a bridge: its chain, sets and the rules of every port on it go in one transaction. */
  async removeBridge(name: string): Promise<void> {
    const bridge = parseInterfaceName(name, "name");
    const live = await this.readTable();
    if (live === undefined) return;
    const names = [...live.chains.keys()].filter((c) => c.startsWith("bridge_") && c !== `bridge_${bridge}`).map((c) => c.slice(7));
    const ports = [...live.portComments].filter(([, comment]) => comment.startsWith(`bridge=${bridge} `)).map(([device]) => device);
    await this.apply([renderBridgesChain(names), ...ports.map(renderPortRemoval), renderBridgeRemoval(bridge)].join("\n"));
    this.logger?.info({ bridge, ports: ports.length }, "bridge no longer managed");
  }

  async readLive(): Promise<FirewallState> {
    const live = await this.readTable();
    if (live === undefined) return { bridges: [], ports: [] };
    const bridges: ManagedBridge[] = [];
    for (const chain of live.chains.keys()) {
      if (!chain.startsWith("bridge_")) continue;
      const o = bridgeObjects(chain.slice(7));
      const bridge = { name: chain.slice(7), trustedPorts: live.sets.get(o.trustedSet) ?? [] } as ManagedBridge;
      const patterns = live.sets.get(o.guestSet) ?? [];
      if (patterns.length > 0) bridge.guestPortPatterns = patterns;
      bridges.push(bridge);
    }
    const ports: GuestPort[] = [];
    for (const device of live.ports.keys()) {
      const comment = live.portComments.get(device) ?? "";
      const addresses = live.sources.get(portObjects(device).chain) ?? { ip6: [], ip4: [] };
      ports.push({
        device,
        bridge: /bridge=(\S+)/.exec(comment)?.[1] ?? "",
        mac: /mac=(\S+)/.exec(comment)?.[1] ?? "",
        linkLocals: addresses.ip6.filter((a) => a.startsWith("fe80:")),
        ipv6: addresses.ip6.filter((a) => !a.startsWith("fe80:")),
        ipv4: addresses.ip4,
      } as GuestPort);
    }
    return { bridges, ports };
  }

  /**
   * Reads the `ports` map and the five `drops_*` sets only, one listing each (nft 1.0.6 cannot
   * run several list commands in one call): the whole table would be ~1.6 MB at 1,000 ports.
   */
  async counters(): Promise<PortCounters[]> {
    const list = async (kind: "map" | "set", name: string) => {
      try {
        return parseNftListing(await nft(`list ${kind} bridge ${TABLE} ${name}`, { netns: this.netns }));
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw firewallFailure(error);
      }
    };
    const ports = await list("map", "ports");
    if (ports === undefined) return [];
    const counts = new Map<CounterKind, Map<string, DropCounter>>();
    for (const kind of counterKinds) {
      const set = dropObjects(kind).set;
      counts.set(kind, (await list("set", set))?.elementCounters.get(set) ?? new Map());
    }
    // A port that never dropped anything for a reason has no element in that reason's set.
    const read = (kind: CounterKind, device: string) => counts.get(kind)?.get(device) ?? { packets: 0, bytes: 0 };
    return [...ports.ports.keys()].sort().map((device) => ({
      device,
      ra: read("ra", device),
      dhcpv6Server: read("dhcp6", device),
      spoof: read("spoof", device),
      fragment: read("frag", device),
      ipv4: read("ipv4", device),
    }));
  }

  async removeAll(): Promise<void> {
    await this.apply(renderTableRemoval());
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

  private async tableExists(): Promise<boolean> {
    const output = await nft("list tables bridge", { netns: this.netns });
    return output.split("\n").some((line) => line.trim() === `table bridge ${TABLE}`);
  }

  /** Bridges the `bridges` chain jumps to; undefined when our table does not exist. */
  private async liveBridgeNames(): Promise<string[] | undefined> {
    try {
      return bridgeJumps(await nft(`list chain bridge ${TABLE} bridges`, { netns: this.netns }));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw firewallFailure(error);
    }
  }

  private async caps(): Promise<NftCapabilities> {
    this.capabilities ??= await probeNftCapabilities(this.netns);
    return this.capabilities;
  }

  /** Whether the table is verified, still at its generation, and holds exactly this port. */
  private async holds(port: GuestPort): Promise<boolean> {
    const verified = this.verified;
    const held = verified?.state.ports.find((p) => p.device === port.device);
    if (verified === undefined || held === undefined || JSON.stringify(held) !== JSON.stringify(port)) return false;
    return (await rulesetGeneration(this.netns).catch(() => undefined)) === verified.generation;
  }

  /**
   * Commits `transactions` in order. If the generation, read before the table was listed, moved
   * by exactly their number, nobody else committed in between and the table now holds `state`
   * (whose `stateKey` is `key`).
   */
  private async commitAll(
    transactions: readonly string[],
    generation: number | undefined,
    state: FirewallState,
    key: string,
  ): Promise<void> {
    for (const script of transactions) await this.apply(script);
    if (generation === undefined) return;
    const now = await rulesetGeneration(this.netns).catch(() => undefined);
    if (now === generation + transactions.length) this.verified = { generation: now, state, key };
  }

  /**
   * Runs one port's commit and, when the table was verified and the generation moved by exactly
   * this commit, carries the verified state forward with the port changed as `change` says.
   * Anything else (another commit in between, a concurrent change of ours) leaves it unverified,
   * so the next reconcile lists the table.
   */
  private async carryVerified(commit: () => Promise<void>, change: (ports: readonly GuestPort[]) => GuestPort[]): Promise<void> {
    const verified = this.verified;
    this.verified = undefined;
    const before = verified === undefined ? undefined : await rulesetGeneration(this.netns).catch(() => undefined);
    await commit();
    if (verified === undefined || before !== verified.generation) return;
    const after = await rulesetGeneration(this.netns).catch(() => undefined);
    if (after !== before + 1) return;
    const state = { ...verified.state, ports: change(verified.state.ports) };
    this.verified = { generation: after, state, key: stateKey(state) };
  }

  private async apply(script: string, hint?: string): Promise<void> {
    try {
      await nft(script, { netns: this.netns });
    } catch (error) {
      throw firewallFailure(error, hint);
    }
  }
}

/** Whether the kernel accepts `meta ibrname` in a bridge table (checked without committing). */
export async function probeNftCapabilities(netns?: string): Promise<NftCapabilities> {
  const script = [
    "add table bridge v6agent_probe",
    "add chain bridge v6agent_probe c { type filter hook prerouting priority 0; }",
    'add rule bridge v6agent_probe c meta ibrname "probe0" accept',
  ].join("\n");
  try {
    await nft(script, { netns, dryRun: true });
    return { bridgeMeta: true };
  } catch {
    return { bridgeMeta: false };
  }
}

function firewallFailure(error: unknown, hint?: string): V6Error {
  const detail = error instanceof NftError ? error.stderr.trim().split("\n").slice(0, 6).join("; ") : String(error);
  return new V6Error("firewall_failure", `nft transaction failed${hint ? ` (${hint})` : ""}: ${detail}`, { cause: error });
}

function sameComments(live: (string | undefined)[] | undefined, rules: string[]): boolean {
  if (live === undefined || live.length !== rules.length) return false;
  return rules.every((rule, i) => live[i] === ruleComment(rule));
}

function sameElements(live: string[] | undefined, wanted: string[]): boolean {
  const a = [...(live ?? [])].sort();
  const b = [...wanted].sort();
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function bridgeMatches(bridge: ManagedBridge, live: NftLiveTable, caps: NftCapabilities): boolean {
  const o = bridgeObjects(bridge.name);
  return (
    sameComments(live.chains.get(o.chain), renderBridgeRules(bridge, caps)) &&
    sameElements(live.sets.get(o.trustedSet), bridge.trustedPorts) &&
    sameElements(live.sets.get(o.guestSet), bridge.guestPortPatterns ?? []) &&
    live.counters.has(o.counter)
  );
}

function portMatches(port: GuestPort, live: NftLiveTable): boolean {
  const o = portObjects(port.device);
  if (live.ports.get(port.device) !== o.chain) return false;
  if (!sameComments(live.chains.get(o.chain), renderPortRules(port))) return false;
  return live.portComments.get(port.device) === portEntryComment(port);
}

/** The bridge names the `bridges` chain jumps to. */
function bridgeJumps(listing: string): string[] {
  return [...listing.matchAll(/\bjump bridge_(\S+)/g)].map((match) => match[1] as string);
}

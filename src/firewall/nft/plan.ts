import { dropReasons, type FirewallState, type GuestPort, type ManagedBridge } from "../model.js";
import { bridgeRules, bridgesChainRules, renderBridge, renderBridgeRemoval, renderBridgesChain } from "./bridges.js";
import {
  addElements,
  bySet,
  elementChanges,
  membershipComments,
  portElements,
  removeElement,
  type SetElement,
  uplinkElements,
} from "./elements.js";
import type { NftLiveTable } from "./live.js";
import { liveElements } from "./live-state.js";
import { bridgeObjects, dropObjects, dropSets, type NftCapabilities, PORT_SETS, quote, ruleComment } from "./names.js";
import { renderSkeleton, SKELETON_SETS, skeletonRules } from "./skeleton.js";

/**
 * What reconcile writes, worked out from the desired state and the live table: structure
 * (skeleton, bridge chains) only where it differs, then per-device element changes, then what
 * goes last (bridges no longer managed, counts of ports that are gone). Pure.
 */
export interface NftPlan {
  structure: string[];
  ports: PortChange[];
  uplinks: string[];
  tail: string[];
}

export interface PortChange {
  device: string;
  change: "added" | "updated" | "removed";
  lines: string[];
}

export function planReconcile(state: FirewallState, live: NftLiveTable, caps: NftCapabilities): NftPlan {
  const structure: string[] = [];
  if (!skeletonMatches(live)) structure.push(renderSkeleton());
  for (const bridge of state.bridges) if (!bridgeMatches(bridge, live, caps)) structure.push(renderBridge(bridge, caps));
  const names = state.bridges.map((b) => b.name as string);
  if (!sameComments(live.chains.get("bridges"), bridgesChainRules(names))) structure.push(renderBridgesChain(names));

  const wanted = desiredElements(state);
  const comments = { before: live.comments, after: membershipComments(state.ports, state.bridges) };
  const present = liveElements(live);
  const guests = new Set(live.sets.get(PORT_SETS.guests) ?? []);
  const desiredPorts = new Set(state.ports.map((p) => p.device as string));
  const ports: PortChange[] = [];
  const uplinks: string[] = [];
  for (const device of new Set([...wanted.keys(), ...present.keys()])) {
    const before = present.get(device) ?? [];
    const after = wanted.get(device) ?? [];
    if (sameElements(before, after, comments)) continue;
    const lines = elementChanges(before, after, comments);
    if (desiredPorts.has(device)) {
      ports.push({ device, change: guests.has(quote(device)) ? "updated" : "added", lines });
    } else if (after.length === 0 && before.some((e) => e.set === PORT_SETS.guests || e.set.startsWith("port_"))) {
      ports.push({ device, change: "removed", lines: [...lines, ...forgetCounts(device)] });
    } else {
      uplinks.push(...lines);
    }
  }

  const tail: string[] = [];
  // Counts of devices that are neither ports nor trusted ports any more (a port removed by hand).
  const keep = new Set([...desiredPorts, ...state.bridges.flatMap((b) => b.trustedPorts as string[])]);
  const removed = new Set(ports.filter((p) => p.change === "removed").map((p) => p.device));
  for (const reason of dropReasons) {
    for (const device of live.elementCounters.get(dropObjects(reason).set)?.keys() ?? []) {
      if (!keep.has(device) && !removed.has(device)) tail.push(...removeElement({ set: dropObjects(reason).set, key: quote(device) }));
    }
  }
  const managed = new Set(names);
  for (const chain of live.chains.keys()) {
    if (chain.startsWith("bridge_") && !managed.has(chain.slice("bridge_".length)))
      tail.push(renderBridgeRemoval(chain.slice("bridge_".length)));
  }
  return { structure, ports, uplinks, tail };
}

/** Every per-device element of a state, by device. */
export function desiredElements(state: FirewallState): Map<string, SetElement[]> {
  const byDevice = new Map<string, SetElement[]>();
  for (const port of state.ports) byDevice.set(port.device, portElements(port));
  for (const bridge of state.bridges) {
    for (const element of uplinkElements(bridge)) {
      const device = /^"([^"]*)"/.exec(element.key)?.[1] ?? "";
      byDevice.set(device, [...(byDevice.get(device) ?? []), element]);
    }
  }
  return byDevice;
}

/** One port's change from what the table held (`before`, undefined: nothing) to `after`. */
export function renderPortChange(before: GuestPort | undefined, after: GuestPort): string[] {
  return elementChanges(before === undefined ? [] : portElements(before), portElements(after), {
    before: before === undefined ? new Map() : membershipComments([before], []),
    after: membershipComments([after], []),
  });
}

/** Removes a port in one transaction, idempotently: its elements (all of `known`, or at least its membership) and its counts. */
export function renderPortRemoval(device: string, known: GuestPort | undefined): string[] {
  const elements = known === undefined ? [{ set: PORT_SETS.guests, key: quote(device) }] : portElements(known);
  return [...elements.flatMap(removeElement), ...forgetCounts(device)];
}

/** Forgets one device's count of every drop reason (idempotently). */
export function forgetCounts(device: string): string[] {
  return dropSets.flatMap((set) => removeElement({ set, key: quote(device) }));
}

/** A bridge's router-guard elements going from `before` to `after` (either may be undefined). */
export function renderUplinkChange(before: ManagedBridge | undefined, after: ManagedBridge | undefined): string[] {
  return elementChanges(before === undefined ? [] : uplinkElements(before), after === undefined ? [] : uplinkElements(after), {
    before: before === undefined ? new Map() : membershipComments([], [before]),
    after: after === undefined ? new Map() : membershipComments([], [after]),
  });
}

/** Ports' elements as one `add element` command per set (a full apply, from sets that lack them). */
export function renderElementsBlock(ports: readonly GuestPort[], bridges: readonly ManagedBridge[] = []): string[] {
  const elements = [...ports.flatMap(portElements), ...bridges.flatMap(uplinkElements)];
  const comments = membershipComments(ports, bridges);
  return [...bySet(elements)].map(([set, group]) => addElements(set, group, comments));
}

/** The whole desired state as one transaction, from an empty (or absent) table. */
export function renderState(state: FirewallState, caps: NftCapabilities): string {
  return [
    renderSkeleton(),
    ...state.bridges.map((b) => renderBridge(b, caps)),
    renderBridgesChain(state.bridges.map((b) => b.name)),
    ...renderElementsBlock(state.ports, state.bridges),
  ].join("\n");
}

function skeletonMatches(live: NftLiveTable): boolean {
  return (
    SKELETON_SETS.every((name) => live.sets.has(name) || live.maps.has(name)) &&
    dropSets.every((set) => live.elementCounters.has(set)) &&
    skeletonRules().every(({ chain, rules }) => sameComments(live.chains.get(chain), rules)) &&
    live.chains.has("bridges")
  );
}

function bridgeMatches(bridge: ManagedBridge, live: NftLiveTable, caps: NftCapabilities): boolean {
  const o = bridgeObjects(bridge.name);
  return (
    sameComments(live.chains.get(o.chain), bridgeRules(bridge, caps)) &&
    sameList(live.sets.get(o.trustedSet), bridge.trustedPorts.map(quote)) &&
    sameList(live.sets.get(o.guestSet), (bridge.guestPortPatterns ?? []).map(quote)) &&
    live.counters.has(o.counter)
  );
}

export function sameComments(live: readonly (string | undefined)[] | undefined, rules: readonly string[]): boolean {
  if (live === undefined || live.length !== rules.length) return false;
  return rules.every((rule, i) => live[i] === ruleComment(rule));
}

function sameList(live: readonly string[] | undefined, wanted: readonly string[]): boolean {
  const a = [...(live ?? [])].sort();
  const b = [...wanted].sort();
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function sameElements(
  before: readonly SetElement[],
  after: readonly SetElement[],
  comments: { before: Map<string, string>; after: Map<string, string> },
): boolean {
  const ids = (list: readonly SetElement[]) => list.map((e) => `${e.set} ${e.key}`);
  if (!sameList(ids(before), ids(after))) return false;
  return ids(after).every((id) => comments.after.get(id) === undefined || comments.after.get(id) === comments.before.get(id));
}

import type { ManagedBridge } from "../model.js";
import { bridgeObjects, type NftCapabilities, quote, T, withComment } from "./names.js";

/**
 * Each managed bridge has a chain of its own, `bridge_<name>`, reached from `bridges`: its
 * trusted ports go on to the shared `uplink` chain (which passes them unless the bridge names
 * its router), and its unknown guest ports are dropped. Bridges are few and change rarely.
 */

/** The rules of one managed bridge's chain. */
export function bridgeRules(bridge: ManagedBridge, caps: NftCapabilities): string[] {
  const o = bridgeObjects(bridge.name);
  // With bridge metadata every unknown port of this bridge is dropped, and only of this bridge.
  // Without it, the name patterns are the fallback; they cannot tell bridges apart, so they are
  // not used where the precise rule exists (a vif* on a bridge we do not manage must pass).
  const unknown = caps.bridgeMeta ? `meta ibrname "${bridge.name}"` : `iifname @${o.guestSet}`;
  return [`iifname @${o.trustedSet} goto uplink`, `${unknown} counter name "${o.counter}" drop`];
}

/** Creates or rewrites a bridge's chain and sets (its router elements are elements.ts's). */
export function renderBridge(bridge: ManagedBridge, caps: NftCapabilities): string {
  const o = bridgeObjects(bridge.name);
  const lines = [
    `add set ${T} ${o.trustedSet} { type ifname; }`,
    `flush set ${T} ${o.trustedSet}`,
    `add set ${T} ${o.guestSet} { type ifname; flags interval; }`,
    `flush set ${T} ${o.guestSet}`,
    `add counter ${T} ${o.counter}`,
    `add chain ${T} ${o.chain}`,
    `flush chain ${T} ${o.chain}`,
  ];
  if (bridge.trustedPorts.length > 0) lines.push(`add element ${T} ${o.trustedSet} { ${bridge.trustedPorts.map(quote).join(", ")} }`);
  const patterns = bridge.guestPortPatterns ?? [];
  if (patterns.length > 0) lines.push(`add element ${T} ${o.guestSet} { ${patterns.map(quote).join(", ")} }`);
  for (const rule of bridgeRules(bridge, caps)) lines.push(`add rule ${T} ${o.chain} ${withComment(rule)}`);
  return lines.join("\n");
}

/** The `bridges` chain: one jump per managed bridge (rewritten whole; it is tiny). */
export function bridgesChainRules(names: readonly string[]): string[] {
  return [...names].sort().map((name) => `jump ${bridgeObjects(name).chain}`);
}

export function renderBridgesChain(names: readonly string[]): string {
  return [`flush chain ${T} bridges`, ...bridgesChainRules(names).map((r) => `add rule ${T} bridges ${withComment(r)}`)].join("\n");
}

/** Removes a bridge's chain and sets (its jump must already be gone from `bridges`). */
export function renderBridgeRemoval(name: string): string {
  const o = bridgeObjects(name);
  return [
    `add chain ${T} ${o.chain}`,
    `flush chain ${T} ${o.chain}`,
    `delete chain ${T} ${o.chain}`,
    `add set ${T} ${o.trustedSet} { type ifname; }`,
    `delete set ${T} ${o.trustedSet}`,
    `add set ${T} ${o.guestSet} { type ifname; flags interval; }`,
    `delete set ${T} ${o.guestSet}`,
    `add counter ${T} ${o.counter}`,
    `delete counter ${T} ${o.counter}`,
  ].join("\n");
}

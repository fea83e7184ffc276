import type { ApplyResult, FirewallState } from "../model.js";
import {
  EB_MAIN,
  ebBridgeChain,
  ebBridgeRules,
  ebDispatchRules,
  ebPortChain,
  ebPortLines,
  ebPortRules,
  ebRouterChain,
  ebRouterRules,
} from "./ebtables.js";
import {
  IP6_MAIN,
  ip6BridgeRules,
  ip6DispatchRule,
  ip6PortChain,
  ip6PortLines,
  ip6PortRules,
  ip6RouterChain,
  ip6RouterRules,
  ip6TargetChain,
  ip6TargetRules,
} from "./ip6tables.js";
import type { SavedTable } from "./live.js";

/** The built-in chain our main chain hangs off, in both tools' tables. */
export const HOOK = "PREROUTING";
/** Our chains, by name, in either tool (`V6AGENT`, `V6A-<dev>`, `V6B-<br>`, `V6N-<dev>`, `V6R-<dev>`). */
export const isOurs = (name: string) => name === EB_MAIN || /^V6[ABNR]-/.test(name);

export interface XtablesPlan {
  eb: string[];
  ip6: string[];
  result: ApplyResult;
}

/**
 * The two restore batches that take the live tables (ebtables `nat`, ip6tables `raw`) to
 * `state`: chains that differ are rewritten whole (`:chain` empties one with --noflush), our
 * jump is kept first in PREROUTING, main chains are rewritten when their rules differ, and our
 * chains no longer wanted are flushed and deleted after nothing references them. Pure.
 */
export function planXtables(state: FirewallState, eb: SavedTable, ip6: SavedTable, bridgeMeta: boolean): XtablesPlan {
  const result: ApplyResult = { changed: false, addedPorts: [], updatedPorts: [], removedPorts: [] };
  const ebDeclare: string[] = [];
  const ebLines: string[] = [];
  const ebTail: string[] = [];
  const ip6Declare: string[] = [];
  const ip6Lines: string[] = [];
  const ip6Tail: string[] = [];
  const ebChain = (name: string, rules: readonly string[]) => {
    if (sameRules(eb.chains.get(name)?.rules, rules)) return;
    ebDeclare.push(`:${name} RETURN`);
    ebLines.push(...rules.map((r) => `-A ${name} ${r}`));
  };
  const ip6Chain = (name: string, rules: readonly string[]) => {
    if (sameRules(ip6.chains.get(name)?.rules, rules)) return;
    ip6Declare.push(`:${name} - [0:0]`);
    ip6Lines.push(...rules.map((r) => `-A ${name} ${r}`));
  };

  // The main chains exist, and each is jumped to first from PREROUTING: a rule above ours (an
  // ACCEPT of someone else's) would let frames skip our policy, so a jump found lower is moved up.
  if (!eb.chains.has(EB_MAIN)) ebDeclare.push(`:${EB_MAIN} RETURN`);
  if (!ip6.chains.has(IP6_MAIN)) ip6Declare.push(`:${IP6_MAIN} - [0:0]`);
  ebLines.push(...jumpFirst(eb.chains.get(HOOK)?.rules ?? [], EB_MAIN));
  ip6Lines.push(...jumpFirst(ip6.chains.get(HOOK)?.rules ?? [], IP6_MAIN));

  for (const port of state.ports) {
    const same =
      sameRules(eb.chains.get(ebPortChain(port.device))?.rules, texts(ebPortRules(port))) &&
      sameRules(ip6.chains.get(ip6PortChain(port.device))?.rules, texts(ip6PortRules(port))) &&
      sameRules(ip6.chains.get(ip6TargetChain(port.device))?.rules, texts(ip6TargetRules(port)));
    if (same) continue;
    const exists = eb.chains.has(ebPortChain(port.device)) || ip6.chains.has(ip6PortChain(port.device));
    (exists ? result.updatedPorts : result.addedPorts).push(port.device);
    const [ebHead, ...ebRules] = ebPortLines(port);
    ebDeclare.push(ebHead as string);
    ebLines.push(...ebRules);
    const lines = ip6PortLines(port);
    ip6Declare.push(...lines.filter((l) => l.startsWith(":")));
    ip6Lines.push(...lines.filter((l) => !l.startsWith(":")));
  }
  for (const bridge of state.bridges) {
    ebChain(ebBridgeChain(bridge.name), texts(ebBridgeRules(bridge, bridgeMeta)));
    for (const uplink of bridge.router === undefined ? [] : bridge.trustedPorts) {
      ebChain(ebRouterChain(uplink), texts(ebRouterRules(bridge)));
      ip6Chain(ip6RouterChain(uplink), texts(ip6RouterRules(bridge)));
    }
  }

  // The main chains: port dispatch (any order) then the bridges' rules, in order.
  const ebMain = [...state.ports.flatMap((p) => ebDispatchRules(p.device)), ...state.bridges.map((b) => `-j ${ebBridgeChain(b.name)}`)];
  const ip6Main = [...state.ports.map((p) => ip6DispatchRule(p.device, p.bridge)), ...state.bridges.flatMap(ip6BridgeRules)];
  const ebTailCount = state.bridges.length;
  const ip6TailCount = ip6Main.length - state.ports.length;
  const rewriteEbMain = !mainMatches(eb.chains.get(EB_MAIN)?.rules ?? [], ebMain, ebTailCount);
  const rewriteIp6Main = !mainMatches(ip6.chains.get(IP6_MAIN)?.rules ?? [], ip6Main, ip6TailCount);

  // Our chains that are no longer wanted (only after the main chains stopped referencing them).
  const wanted = {
    eb: new Set([EB_MAIN, ...state.ports.map((p) => ebPortChain(p.device)), ...state.bridges.map((b) => ebBridgeChain(b.name))]),
    ip6: new Set([IP6_MAIN, ...state.ports.flatMap((p) => [ip6PortChain(p.device), ip6TargetChain(p.device)])]),
  };
  for (const bridge of state.bridges) {
    for (const uplink of bridge.router === undefined ? [] : bridge.trustedPorts) {
      wanted.eb.add(ebRouterChain(uplink));
      wanted.ip6.add(ip6RouterChain(uplink));
    }
  }
  const removed = new Set<string>();
  let staleEb = false;
  for (const chain of eb.chains.keys()) {
    if (!isOurs(chain) || wanted.eb.has(chain)) continue;
    staleEb = true;
    ebTail.push(`-F ${chain}`, `-X ${chain}`);
    if (chain.startsWith("V6A-")) removed.add(chain.slice(4));
  }
  for (const chain of ip6.chains.keys()) {
    if (!isOurs(chain) || wanted.ip6.has(chain)) continue;
    ip6Tail.push(`-F ${chain}`, `-X ${chain}`);
    if (chain.startsWith("V6A-") || chain.startsWith("V6N-")) removed.add(chain.slice(4));
  }
  if (rewriteEbMain || staleEb) {
    if (eb.chains.has(EB_MAIN)) ebDeclare.push(`:${EB_MAIN} RETURN`);
    ebLines.push(...ebMain.map((r) => `-A ${EB_MAIN} ${r}`));
  }
  if (rewriteIp6Main || ip6Tail.length > 0) {
    if (ip6.chains.has(IP6_MAIN)) ip6Declare.push(`:${IP6_MAIN} - [0:0]`);
    ip6Lines.push(...ip6Main.map((r) => `-A ${IP6_MAIN} ${r}`));
  }
  result.removedPorts = [...removed];
  const ebBatch = [...new Set(ebDeclare), ...ebLines, ...ebTail];
  const ip6Batch = [...new Set(ip6Declare), ...ip6Lines, ...ip6Tail];
  result.changed = ebBatch.length + ip6Batch.length > 0;
  return { eb: ebBatch, ip6: ip6Batch, result };
}

function texts(rules: readonly { text: string }[]): string[] {
  return rules.map((r) => r.text);
}

/** Batch lines that make `-j <target>` the first rule of PREROUTING (none when it already is). */
function jumpFirst(rules: readonly string[], target: string): string[] {
  const jump = `-j ${target}`;
  if (rules[0] === jump) return [];
  return [...rules.filter((rule) => rule === jump).map(() => `-D ${HOOK} ${jump}`), `-I ${HOOK} 1 ${jump}`];
}

export function sameRules(live: readonly string[] | undefined, wanted: readonly string[]): boolean {
  return live !== undefined && live.length === wanted.length && wanted.every((rule, i) => live[i] === rule);
}

/** The same rules, the dispatch part in any order, the last `tail` rules (the bridges') in order. */
function mainMatches(live: readonly string[], wanted: readonly string[], tail: number): boolean {
  if (live.length !== wanted.length) return false;
  const set = new Set(live);
  if (!wanted.every((rule) => set.has(rule))) return false;
  return tail === 0 || sameRules(live.slice(live.length - tail), wanted.slice(wanted.length - tail));
}

import { run } from "../../exec.js";
import { nft } from "../nft/libnftables.js";
import type { SavedTable } from "./live.js";
import { isOurs } from "./plan.js";
import { detectTools, flavourOnPath, type Table, XtablesRunner } from "./tools.js";

/**
 * The xtables backend's chains wherever they may be: today's layout (ebtables `nat`, ip6tables
 * `raw`, hung off PREROUTING) and the first one (both tools' `filter`, hung off FORWARD and
 * INPUT). The nft backend removes all of them at start; the xtables backend removes the first
 * layout after writing today's.
 */

const CURRENT: readonly Table[] = [
  { tool: "eb", table: "nat" },
  { tool: "ip6", table: "raw" },
];
const FIRST_LAYOUT: readonly Table[] = [
  { tool: "eb", table: "filter" },
  { tool: "ip6", table: "filter" },
];
const HOOKS: Record<Table["table"], readonly string[]> = { nat: ["PREROUTING"], raw: ["PREROUTING"], filter: ["FORWARD", "INPUT"] };

/** The runner for this namespace, or undefined when no ebtables is installed (then no chain of ours can exist). */
async function runner(netns: string | undefined, lockFile?: string): Promise<XtablesRunner | undefined> {
  try {
    await run("ebtables", ["--version"], { netns });
  } catch {
    return undefined;
  }
  return new XtablesRunner(await detectTools(netns), netns, lockFile);
}

/** Our chains in `tables`, described ("ebtables nat: V6AGENT, V6A-vnet1"). */
async function find(tools: XtablesRunner, tables: readonly Table[]): Promise<string[]> {
  const found: string[] = [];
  for (const table of tables) {
    const ours = [...(await tools.save(table)).chains.keys()].filter(isOurs);
    if (ours.length > 0) found.push(`${table.tool === "eb" ? "ebtables" : "ip6tables"} ${table.table}: ${ours.join(", ")}`);
  }
  return found;
}

/** The batch that removes our jumps and chains from one saved table. */
export function removalLines(saved: SavedTable, table: Table["table"]): string[] {
  const lines: string[] = [];
  for (const hook of HOOKS[table]) {
    for (const rule of saved.chains.get(hook)?.rules ?? []) {
      const target = / -?-[jg] (\S+)$|^-[jg] (\S+)$/.exec(rule);
      if (target !== null && isOurs((target[1] ?? target[2]) as string)) lines.push(`-D ${hook} ${rule}`);
    }
  }
  const ours = [...saved.chains.keys()].filter(isOurs);
  for (const chain of ours) lines.push(`-F ${chain}`);
  for (const chain of ours) lines.push(`-X ${chain}`);
  return lines;
}

async function remove(tools: XtablesRunner, tables: readonly Table[]): Promise<void> {
  for (const table of tables) await tools.restore(table, removalLines(await tools.save(table), table.table));
}

/** Every chain of the xtables backend live in this namespace, described; empty when none. */
export async function xtablesLeftovers(netns?: string): Promise<string[]> {
  // The nf_tables flavour's tables are nft tables: listed in-process, without starting four tools.
  if (flavourOnPath() === "nft") {
    const found = await nftFlavourLeftovers(netns);
    if (found !== undefined) return found;
  }
  const tools = await runner(netns);
  return tools === undefined ? [] : find(tools, [...CURRENT, ...FIRST_LAYOUT]);
}

/** Our chains in the nft tables ebtables-nft and ip6tables-nft write; undefined when libnftables cannot tell. */
async function nftFlavourLeftovers(netns: string | undefined): Promise<string[] | undefined> {
  const found: string[] = [];
  for (const [family, tool] of [
    ["bridge", "ebtables"],
    ["ip6", "ip6tables"],
  ] as const) {
    let listing: string;
    try {
      listing = await nft(`list chains ${family}`, { netns });
    } catch {
      return undefined;
    }
    const chains = new Map<string, string[]>();
    let table: string | undefined;
    for (const line of listing.split("\n")) {
      const header = /^table \S+ (\S+) \{$/.exec(line.trim());
      if (header !== null) table = header[1];
      const chain = /^chain (\S+) \{$/.exec(line.trim())?.[1];
      if (chain !== undefined && table !== undefined && ["nat", "filter", "raw"].includes(table) && isOurs(chain)) {
        chains.set(table, [...(chains.get(table) ?? []), chain]);
      }
    }
    for (const [name, ours] of chains) found.push(`${tool} ${name}: ${ours.join(", ")}`);
  }
  return found;
}

export async function removeXtablesLeftovers(netns?: string): Promise<void> {
  const tools = await runner(netns);
  if (tools !== undefined) await remove(tools, [...CURRENT, ...FIRST_LAYOUT]);
}

/** The first layout's chains (filter tables), described. */
export async function firstLayoutLeftovers(tools: XtablesRunner): Promise<string[]> {
  return find(tools, FIRST_LAYOUT);
}

export async function removeFirstLayout(tools: XtablesRunner): Promise<void> {
  await remove(tools, FIRST_LAYOUT);
}

/** Removes today's layout (removeAll). */
export async function removeCurrentLayout(tools: XtablesRunner): Promise<void> {
  await remove(tools, CURRENT);
}

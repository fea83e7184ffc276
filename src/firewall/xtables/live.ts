/**
 * Parses `ebtables-save -c` / `ip6tables-save -c` (one table, `filter` unless named): every
 * chain with its rules (the text after `-A <chain> `) and their packet/byte counters, in order.
 */
export interface SavedChain {
  rules: string[];
  counters: { packets: number; bytes: number }[];
}

export interface SavedTable {
  chains: Map<string, SavedChain>;
}

export function parseSave(text: string, table = "filter"): SavedTable {
  const chains = new Map<string, SavedChain>();
  let inFilter = false;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("*")) {
      inFilter = line === `*${table}`;
      continue;
    }
    if (!inFilter || line === "" || line.startsWith("#") || line === "COMMIT") continue;
    if (line.startsWith(":")) {
      const name = line.slice(1).split(" ")[0] as string;
      if (!chains.has(name)) chains.set(name, { rules: [], counters: [] });
      continue;
    }
    // ip6tables: "[p:b] -A chain rule"; ebtables-nft: the same, or "-A chain rule -c p b" (legacy).
    const match = /^(?:\[(\d+):(\d+)\] )?-A (\S+) (.*?)(?: -c (\d+) (\d+))?$/.exec(line);
    if (!match) continue;
    const chain = match[3] as string;
    const saved = chains.get(chain) ?? { rules: [], counters: [] };
    saved.rules.push(match[4] as string);
    saved.counters.push({ packets: Number(match[1] ?? match[5] ?? 0), bytes: Number(match[2] ?? match[6] ?? 0) });
    chains.set(chain, saved);
  }
  return { chains };
}

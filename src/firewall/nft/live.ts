/**
 * Parses `nft -j list table bridge v6agent` into what reconcile compares: set elements, the
 * comment sequence of every chain's rules, the dispatch map and named counters.
 */
export interface NftLiveTable {
  sets: Map<string, string[]>;
  /** Chain name → the `v6a:` comments of its rules, in order (undefined for a rule without one). */
  chains: Map<string, (string | undefined)[]>;
  /** Device → the chain the `ports` map jumps to. */
  ports: Map<string, string>;
  /** Device → the comment of its `ports` entry (`bridge=... mac=...`). */
  portComments: Map<string, string>;
  /** Other maps (the iifname → counter maps): name → key → value. */
  maps: Map<string, Map<string, string>>;
  /** Chain → the addresses its rules compare a source against with `!=` (the own-address lists). */
  sources: Map<string, { ip6: string[]; ip4: string[] }>;
  counters: Map<string, { packets: number; bytes: number }>;
  /** True when the `ports` map exists. */
  hasPortsMap: boolean;
}

type Json = Record<string, unknown>;

export function parseNftJson(text: string): NftLiveTable {
  const live: NftLiveTable = {
    sets: new Map(),
    chains: new Map(),
    ports: new Map(),
    portComments: new Map(),
    maps: new Map(),
    sources: new Map(),
    counters: new Map(),
    hasPortsMap: false,
  };
  const items = (JSON.parse(text) as { nftables?: Json[] }).nftables ?? [];
  for (const item of items) {
    if (item.set !== undefined) {
      const set = item.set as Json;
      live.sets.set(String(set.name), ((set.elem as unknown[] | undefined) ?? []).map(elementText));
    } else if (item.map !== undefined) {
      const map = item.map as Json;
      if (map.name !== "ports") {
        const entries = new Map<string, string>();
        for (const entry of (map.elem as unknown[] | undefined) ?? []) {
          const [key, value] = entry as [unknown, unknown];
          entries.set(elementText(key), elementText(value));
        }
        live.maps.set(String(map.name), entries);
        continue;
      }
      live.hasPortsMap = true;
      for (const entry of (map.elem as unknown[] | undefined) ?? []) {
        const [key, verdict] = entry as [unknown, Json];
        const jump = verdict?.jump as Json | undefined;
        live.ports.set(elementText(key), jump === undefined ? "" : String(jump.target));
        const comment = ((key as Json)?.elem as Json | undefined)?.comment;
        if (typeof comment === "string") live.portComments.set(elementText(key), comment);
      }
    } else if (item.chain !== undefined) {
      const chain = item.chain as Json;
      if (!live.chains.has(String(chain.name))) live.chains.set(String(chain.name), []);
    } else if (item.rule !== undefined) {
      const rule = item.rule as Json;
      const name = String(rule.chain);
      const list = live.chains.get(name) ?? [];
      list.push(typeof rule.comment === "string" ? rule.comment : undefined);
      live.chains.set(name, list);
      for (const expression of (rule.expr as Json[] | undefined) ?? []) {
        const match = expression.match as Json | undefined;
        const payload = (match?.left as Json | undefined)?.payload as Json | undefined;
        if (match?.op !== "!=" || payload?.field !== "saddr" || typeof match.right !== "string") continue;
        const sources = live.sources.get(name) ?? { ip6: [], ip4: [] };
        if (payload.protocol === "ip6" && match.right !== "::") sources.ip6.push(match.right);
        if (payload.protocol === "ip") sources.ip4.push(match.right);
        live.sources.set(name, sources);
      }
    } else if (item.counter !== undefined) {
      const counter = item.counter as Json;
      live.counters.set(String(counter.name), { packets: Number(counter.packets ?? 0), bytes: Number(counter.bytes ?? 0) });
    }
  }
  return live;
}

/** Set elements come back as plain strings, or as `{elem: {val: ...}}` when they carry options. */
function elementText(value: unknown): string {
  if (typeof value === "string" || typeof value === "number") return String(value);
  const object = value as Json;
  if (object?.elem !== undefined) return elementText((object.elem as Json).val);
  if (object?.prefix !== undefined) {
    const prefix = object.prefix as Json;
    return `${String(prefix.addr)}/${String(prefix.len)}`;
  }
  return JSON.stringify(value);
}

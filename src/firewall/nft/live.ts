/**
 * Parses `nft -j list table bridge v6agent` into what reconcile compares: set elements, the
 * comment sequence of every chain's rules, the dispatch map, named counters and the per-port
 * counts kept in the `drops_*` sets.
 */
export interface NftLiveTable {
  sets: Map<string, string[]>;
  /** Chain name → the `v6a:` comments of its rules, in order (undefined for a rule without one). */
  chains: Map<string, (string | undefined)[]>;
  /** Device → the chain the `ports` map jumps to. */
  ports: Map<string, string>;
  /** Device → the comment of its `ports` entry (`bridge=... mac=...`). */
  portComments: Map<string, string>;
  /** Maps other than `ports` (none in the current layout; an older one had counter maps). */
  otherMaps: string[];
  /** Sets whose elements carry counters (the `drops_*` sets): set → device → count. */
  elementCounters: Map<string, Map<string, { packets: number; bytes: number }>>;
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
    otherMaps: [],
    elementCounters: new Map(),
    sources: new Map(),
    counters: new Map(),
    hasPortsMap: false,
  };
  const items = (JSON.parse(text) as { nftables?: Json[] }).nftables ?? [];
  for (const item of items) {
    if (item.set !== undefined) {
      const set = item.set as Json;
      const elements = (set.elem as unknown[] | undefined) ?? [];
      live.sets.set(String(set.name), elements.map(elementText));
      if (Array.isArray(set.stmt) && set.stmt.some((stmt: Json) => "counter" in stmt)) {
        const counts = new Map<string, { packets: number; bytes: number }>();
        for (const element of elements) {
          const counter = ((element as Json)?.elem as Json | undefined)?.counter as Json | undefined;
          counts.set(elementText(element), { packets: Number(counter?.packets ?? 0), bytes: Number(counter?.bytes ?? 0) });
        }
        live.elementCounters.set(String(set.name), counts);
      }
    } else if (item.map !== undefined) {
      const map = item.map as Json;
      if (map.name !== "ports") {
        live.otherMaps.push(String(map.name));
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

/**
 * What agents reported (agent.hello, agent.heartbeat, vif.report), in memory and bounded both in
 * entries and in bytes (the size of the frames they came in): the reference server persists
 * nothing it does not need, and what peers send must not grow it without limit (issue 17: 600
 * hellos of 1 MiB took it to 1.1 GiB under a count-only cap). Readers page with a sequence
 * number and may wait for the next entry (long poll).
 */
export interface Report {
  seq: number;
  at: string;
  hostId: string;
  method: "agent.hello" | "agent.heartbeat" | "vif.report";
  params: unknown;
}

export interface ReportQuery {
  /** Only entries with seq > since. */
  since?: number;
  hostId?: string;
  method?: string;
  limit?: number;
  /** Stop adding entries once their sizes add up to this (at least one is returned). */
  maxBytes?: number;
}

export interface ReportLogLimits {
  /** Default 10,000. */
  maxEntries?: number;
  /** Default 64 MiB. */
  maxBytes?: number;
}

interface Entry {
  report: Report;
  bytes: number;
}

export class ReportLog {
  private readonly entries: Entry[] = [];
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private totalBytes = 0;
  private nextSeq = 1;
  private waiters: (() => void)[] = [];

  constructor(limits: ReportLogLimits = {}) {
    this.maxEntries = limits.maxEntries ?? 10_000;
    this.maxBytes = limits.maxBytes ?? 64 * 1024 * 1024;
  }

  /** Keeps a report; `bytes` is what it cost the sender to make us keep it (its frame's size). */
  add(entry: Omit<Report, "seq" | "at">, bytes: number): Report {
    const report: Report = { seq: this.nextSeq++, at: new Date().toISOString(), ...entry };
    this.entries.push({ report, bytes });
    this.totalBytes += bytes;
    let drop = 0;
    while (drop < this.entries.length && (this.entries.length - drop > this.maxEntries || this.totalBytes > this.maxBytes)) {
      this.totalBytes -= (this.entries[drop] as Entry).bytes;
      drop += 1;
    }
    if (drop > 0) this.entries.splice(0, drop);
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
    return report;
  }

  /** The sequence number of the latest entry (0 when empty). */
  get last(): number {
    return this.nextSeq - 1;
  }

  /** Bytes of the reports kept. */
  get bytes(): number {
    return this.totalBytes;
  }

  get size(): number {
    return this.entries.length;
  }

  query(query: ReportQuery = {}): Report[] {
    const since = query.since ?? 0;
    const limit = query.limit ?? 1000;
    const maxBytes = query.maxBytes ?? Number.POSITIVE_INFINITY;
    const found: Report[] = [];
    let bytes = 0;
    for (const { report, bytes: size } of this.entries) {
      if (found.length >= limit) break;
      if (report.seq <= since) continue;
      if (query.hostId !== undefined && report.hostId !== query.hostId) continue;
      if (query.method !== undefined && report.method !== query.method) continue;
      if (found.length > 0 && bytes + size > maxBytes) break;
      found.push(report);
      bytes += size;
    }
    return found;
  }

  /** Like query, but waits up to `waitMs` for a first match. */
  async wait(query: ReportQuery, waitMs: number): Promise<Report[]> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const found = this.query(query);
      const remaining = deadline - Date.now();
      if (found.length > 0 || remaining <= 0) return found;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

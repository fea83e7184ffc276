/**
 * What agents reported (agent.hello, agent.heartbeat, vif.report), in memory and bounded: the
 * reference server persists nothing it does not need. Readers page with a sequence number and
 * may wait for the next entry (long poll).
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
}

export class ReportLog {
  private readonly entries: Report[] = [];
  private nextSeq = 1;
  private waiters: (() => void)[] = [];

  constructor(private readonly capacity = 10_000) {}

  add(entry: Omit<Report, "seq" | "at">): Report {
    const report: Report = { seq: this.nextSeq++, at: new Date().toISOString(), ...entry };
    this.entries.push(report);
    if (this.entries.length > this.capacity) this.entries.splice(0, this.entries.length - this.capacity);
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
    return report;
  }

  /** The sequence number of the latest entry (0 when empty). */
  get last(): number {
    return this.nextSeq - 1;
  }

  query(query: ReportQuery = {}): Report[] {
    const since = query.since ?? 0;
    const matches = this.entries.filter(
      (entry) =>
        entry.seq > since &&
        (query.hostId === undefined || entry.hostId === query.hostId) &&
        (query.method === undefined || entry.method === query.method),
    );
    return matches.slice(0, query.limit ?? 1000);
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

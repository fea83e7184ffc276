/**
 * Runs commands with a concurrency limit and per-resource ordering: two commands that share a
 * resource key (a VM's UUID, a network id) never run at once and start in arrival order;
 * commands on different resources run side by side. The key `*` (EXCLUSIVE) conflicts with
 * every other command, for whole-host operations such as state.sync.
 */
export const EXCLUSIVE = "*";

interface Job {
  keys: readonly string[];
  run: () => Promise<void>;
}

export class CommandScheduler {
  private readonly queue: Job[] = [];
  private readonly held = new Map<string, number>();
  private running = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly maxConcurrent: number,
    private readonly maxQueued: number,
  ) {}

  get runningCount(): number {
    return this.running;
  }

  get queuedCount(): number {
    return this.queue.length;
  }

  /** Whether submit would take a job now. */
  hasRoom(): boolean {
    return this.queue.length < this.maxQueued;
  }

  /** Queues a job; returns false (and does nothing) when the queue is full. */
  submit(keys: readonly string[], run: () => Promise<void>): boolean {
    if (!this.hasRoom()) return false;
    this.queue.push({ keys, run });
    this.pump();
    return true;
  }

  /** Resolves once nothing runs and nothing is queued. */
  idle(): Promise<void> {
    if (this.running === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    // Keys of earlier jobs still waiting: a later job on the same key must not overtake them.
    const blocked = new Set<string>();
    for (let index = 0; index < this.queue.length && this.running < this.maxConcurrent; ) {
      const job = this.queue[index] as Job;
      if (this.conflicts(job.keys, blocked)) {
        for (const key of job.keys) blocked.add(key);
        index += 1;
        continue;
      }
      this.queue.splice(index, 1);
      this.start(job);
    }
  }

  private conflicts(keys: readonly string[], blocked: ReadonlySet<string>): boolean {
    if (blocked.has(EXCLUSIVE) || this.held.has(EXCLUSIVE)) return true;
    if (keys.includes(EXCLUSIVE) && (this.held.size > 0 || blocked.size > 0)) return true;
    return keys.some((key) => this.held.has(key) || blocked.has(key));
  }

  private start(job: Job): void {
    this.running += 1;
    for (const key of job.keys) this.held.set(key, (this.held.get(key) ?? 0) + 1);
    const finish = () => {
      this.running -= 1;
      for (const key of job.keys) {
        const count = (this.held.get(key) ?? 1) - 1;
        if (count === 0) this.held.delete(key);
        else this.held.set(key, count);
      }
      this.pump();
      if (this.running === 0 && this.queue.length === 0) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const resolve of waiters) resolve();
      }
    };
    job.run().then(finish, finish);
  }
}

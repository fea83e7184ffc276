/**
 * Runs tasks one at a time per key (a VM UUID, a network id) and concurrently across keys, so a
 * hypervisor event for a VM never interleaves with a command changing that same VM.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();
  /** The last exclusive task: keyed tasks queued after it wait for it. */
  private barrier: Promise<unknown> = Promise.resolve();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = Promise.all([this.tails.get(key), this.barrier]);
    const result = previous.then(task, task);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /**
   * Runs `task` alone: after every task queued so far (all keys), before any queued later. A full
   * reconcile needs this: it plans from one snapshot of the hypervisor and must not undo a port a
   * concurrent nic.plug installed after that snapshot.
   */
  runExclusive<T>(task: () => Promise<T>): Promise<T> {
    const previous = Promise.all([...this.tails.values(), this.barrier]);
    const result = previous.then(task, task);
    this.barrier = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /** Keys with a task running or queued. */
  busyKeys(): string[] {
    return [...this.tails.keys()];
  }
}

/**
 * Runs tasks one at a time per key (a VM UUID, a network id) and concurrently across keys, so a
 * hypervisor event for a VM never interleaves with a command changing that same VM.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
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

  /** Keys with a task running or queued. */
  busyKeys(): string[] {
    return [...this.tails.keys()];
  }
}

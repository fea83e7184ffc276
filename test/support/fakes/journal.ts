/** One ordered log of what the fakes were asked to do, so a test can check the order across them. */
export class Journal {
  readonly entries: string[] = [];

  record(entry: string): void {
    this.entries.push(entry);
  }

  /** Index of the first entry starting with `prefix` (-1 when none). */
  indexOf(prefix: string): number {
    return this.entries.findIndex((entry) => entry.startsWith(prefix));
  }

  clear(): void {
    this.entries.length = 0;
  }
}

/** Failures a fake injects: the next call of `operation` throws `error` (once). */
export class Faults {
  private readonly next = new Map<string, Error>();

  failNext(operation: string, error: Error): void {
    this.next.set(operation, error);
  }

  check(operation: string): void {
    const error = this.next.get(operation);
    if (error === undefined) return;
    this.next.delete(operation);
    throw error;
  }
}

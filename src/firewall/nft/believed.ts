import { byDevice, type FirewallState, type GuestPort, type ManagedBridge } from "../model.js";

/**
 * Ports per nft transaction when many change at once (a new table at startup, a table flushed
 * by hand). libnftables holds a whole transaction's parse in memory, inside the agent's RSS;
 * batches bound that peak. A port's elements always stay in one transaction, so no port is ever
 * half-protected.
 */
export const PORTS_PER_TRANSACTION = 500;

export function batches<T>(items: readonly T[]): T[][] {
  const result: T[][] = [];
  for (let start = 0; start < items.length; start += PORTS_PER_TRANSACTION) result.push(items.slice(start, start + PORTS_PER_TRANSACTION));
  return result;
}

/** A desired state as a key that does not depend on the order its ports are listed in. */
export function stateKey(state: FirewallState): string {
  return JSON.stringify({ ...state, ports: [...state.ports].sort(byDevice) });
}

/** What the table holds, by port: changed in place by our own commits, in O(1) per port. */
export interface View {
  bridges: ManagedBridge[];
  ports: Map<string, GuestPort>;
}

/**
 * What the table holds, as far as this process knows: taken from a listing, then carried
 * forward through every commit of its own. A port change uses it to delete exactly the
 * elements the port had, without listing the table, and without any work that grows with the
 * number of ports (a one-port change must cost the same at 10 and at 10,000 ports).
 *
 * It is *verified* at a ruleset generation when nobody else can have committed since it was
 * read (the generation moved by exactly our own commits): while the generation is unchanged,
 * reconcile need not list the table again. Unverified, it is still what we wrote; element
 * deletes are idempotent (add, then delete), so a stale view can never make a change fail, and
 * the next reconcile lists and repairs whatever someone else did.
 */
export class Believed {
  private view: View | undefined;
  private generationSeen: number | undefined;
  /** `stateKey` of the view, computed only when reconcile asks (it sorts every port). */
  private key: string | undefined;
  /** Commits of ours in flight: a generation step is ours alone only when one commit ran. */
  private inFlight = 0;
  private overlapped = false;

  constructor(private readonly readGeneration: () => Promise<number | undefined>) {}

  generation(): Promise<number | undefined> {
    return this.readGeneration();
  }

  known(): boolean {
    return this.view !== undefined;
  }

  port(device: string): GuestPort | undefined {
    return this.view?.ports.get(device);
  }

  /** The table is verified at `generation` and holds the state whose key is `key`. */
  isVerified(generation: number | undefined, key: string): boolean {
    if (generation === undefined || this.view === undefined || this.generationSeen !== generation) return false;
    this.key ??= stateKey({ bridges: this.view.bridges, ports: [...this.view.ports.values()] });
    return this.key === key;
  }

  /** Whether the table is verified and nobody committed since. */
  async isCurrent(): Promise<boolean> {
    const generation = this.generationSeen;
    return generation !== undefined && this.view !== undefined && (await this.readGeneration()) === generation;
  }

  /** A listing (or a check) read at `generation` showed `state`. */
  verify(generation: number | undefined, state: FirewallState, key?: string): void {
    this.view = { bridges: [...state.bridges], ports: new Map(state.ports.map((p) => [p.device as string, p])) };
    this.generationSeen = generation;
    this.key = key;
  }

  /** `count` transactions of ours took a table read at `generation` to `state` (whose key is `key`). */
  async committed(generation: number | undefined, count: number, state: FirewallState, key?: string): Promise<void> {
    const now = await this.readGeneration();
    this.verify(generation !== undefined && now === generation + count ? now : undefined, state, key);
  }

  /**
   * Runs one commit of ours and applies `change` to what the table is known to hold. The view
   * stays verified only if it was, and the generation moved by exactly this commit with no
   * other of ours in flight. A failed commit changed nothing (a transaction is atomic), but the
   * view loses its verification: the failure may mean someone else changed the table.
   */
  async carry(commit: () => Promise<void>, change: (view: View) => void): Promise<void> {
    const verified = this.generationSeen;
    this.inFlight++;
    if (this.inFlight > 1) this.overlapped = true;
    try {
      const before = verified === undefined ? undefined : await this.readGeneration();
      try {
        await commit();
      } catch (error) {
        this.generationSeen = undefined;
        throw error;
      }
      const after = verified === undefined ? undefined : await this.readGeneration();
      // Applied to the view as it is now: another commit of ours may have changed it meanwhile.
      if (this.view === undefined) return;
      change(this.view);
      this.key = undefined;
      const alone = !this.overlapped && before !== undefined && before === verified && after === before + 1;
      this.generationSeen = alone ? after : undefined;
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) this.overlapped = false;
    }
  }
}

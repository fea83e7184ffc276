import { V6Error } from "../errors.js";
import { type DesiredNic, type DesiredState, emptyDesiredState } from "./desired-state.js";
import { desiredNic, type NicInput } from "./inputs.js";

/** Persists the desired state (src/daemon/state-store.ts in production). */
export interface DesiredStateStore {
  load(): Promise<DesiredState>;
  save(state: DesiredState): Promise<void>;
  /** Why the loaded state must not be acted on (a corrupt file with no good copy), if so. */
  unusable?(): string | undefined;
}

/**
 * The agent's desired state in memory and on disk: every change is committed through here, and
 * here is where an unreadable state file is remembered. An empty state acted on would remove
 * every guest's rules, so while `problem` is set the agent changes nothing (fail closed) until
 * the server's state.sync replaces the state.
 */
export class DesiredRecord {
  state: DesiredState = emptyDesiredState();
  problem: string | undefined;

  constructor(private readonly store: DesiredStateStore) {}

  async load(): Promise<void> {
    this.state = await this.store.load();
    this.problem = this.store.unusable?.();
  }

  async commit(next: DesiredState): Promise<void> {
    this.state = next;
    await this.store.save(next);
  }

  /** Commands that change the host wait for a trusted desired state. */
  requireTrusted(): void {
    if (this.problem === undefined) return;
    throw new V6Error("unavailable", `${this.problem}; the live rules stay as they are and no change is made until state.sync`);
  }

  /** The server's full state is about to replace ours (state.sync), readable or not. */
  replacing(): void {
    this.problem = undefined;
  }

  /** Validates a NIC against its network on this host; errors name `field`. */
  nic(input: NicInput, field: string): DesiredNic {
    return desiredNic(this.state, input, field);
  }
}

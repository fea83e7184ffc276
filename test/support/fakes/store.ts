import type { DesiredStateStore } from "../../../src/agent/agent.js";
import { type DesiredState, emptyDesiredState } from "../../../src/agent/desired-state.js";

/** The desired state kept in memory; `saved` is every state written, oldest first. */
export class MemoryStore implements DesiredStateStore {
  readonly saved: DesiredState[] = [];

  /** Set to play a state file that could not be read (and had no good copy). */
  problem: string | undefined;

  constructor(private state: DesiredState = emptyDesiredState()) {}

  unusable(): string | undefined {
    return this.problem;
  }

  async load(): Promise<DesiredState> {
    return this.state;
  }

  async save(state: DesiredState): Promise<void> {
    this.state = state;
    this.saved.push(state);
  }

  get current(): DesiredState {
    return this.state;
  }
}

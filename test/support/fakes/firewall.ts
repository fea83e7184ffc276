import type { ApplyResult, Firewall, FirewallState, GuestPort, ManagedBridge, PortCounters } from "../../../src/firewall/model.js";
import { byDevice, zeroCounters } from "../../../src/firewall/model.js";
import { Faults, type Journal } from "./journal.js";

/**
 * An in-memory firewall with the real interface's semantics: reconcile converges to exactly the
 * desired state and says what changed, upsert/remove touch one port. No kernel, no rules.
 */
export class FakeFirewall implements Firewall {
  readonly backend = "nft" as const;
  readonly bridges = new Map<string, ManagedBridge>();
  readonly ports = new Map<string, GuestPort>();
  readonly faults = new Faults();

  constructor(private readonly journal: Journal) {}

  async reconcile(desired: FirewallState, options: { dryRun?: boolean } = {}): Promise<ApplyResult> {
    this.faults.check("reconcile");
    const wanted = new Map(desired.ports.map((port) => [port.device as string, port]));
    const addedPorts = [...wanted.keys()].filter((device) => !this.ports.has(device));
    const updatedPorts = [...wanted.keys()].filter(
      (device) => this.ports.has(device) && JSON.stringify(this.ports.get(device)) !== JSON.stringify(wanted.get(device)),
    );
    const removedPorts = [...this.ports.keys()].filter((device) => !wanted.has(device));
    const bridgesChanged = JSON.stringify([...this.bridges.values()]) !== JSON.stringify(desired.bridges);
    const changed = addedPorts.length + updatedPorts.length + removedPorts.length > 0 || bridgesChanged;
    if (!options.dryRun && changed) {
      this.journal.record(`firewall.reconcile +${addedPorts.join(",")} -${removedPorts.join(",")}`);
      this.bridges.clear();
      for (const bridge of desired.bridges) this.bridges.set(bridge.name, bridge);
      this.ports.clear();
      for (const [device, port] of wanted) this.ports.set(device, port);
    }
    return { changed, addedPorts, updatedPorts, removedPorts };
  }

  async upsertPort(port: GuestPort): Promise<void> {
    this.faults.check("upsertPort");
    this.journal.record(`firewall.upsert ${port.device}`);
    this.ports.set(port.device, port);
  }

  async removePort(device: string): Promise<void> {
    this.faults.check("removePort");
    this.journal.record(`firewall.remove ${device}`);
    this.ports.delete(device);
  }

  async ensureBridge(bridge: ManagedBridge): Promise<void> {
    this.journal.record(`firewall.bridge ${bridge.name}`);
    this.bridges.set(bridge.name, bridge);
  }

  async removeBridge(name: string): Promise<void> {
    this.journal.record(`firewall.unbridge ${name}`);
    this.bridges.delete(name);
  }

  async readLive(): Promise<FirewallState> {
    return { bridges: [...this.bridges.values()], ports: [...this.ports.values()].sort(byDevice) };
  }

  async counters(): Promise<PortCounters[]> {
    return [...this.ports.keys()].map(zeroCounters);
  }

  async removeAll(): Promise<void> {
    this.bridges.clear();
    this.ports.clear();
  }

  /** The fake is the only backend: there is never another one's rules. */
  async otherBackendRules(): Promise<string[]> {
    return [];
  }
}

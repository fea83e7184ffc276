import { duidLl, type Mac } from "../addressing/index.js";
import type { Dhcpv6ClientMessage, IdentityAssociation } from "./dhcpv6-message.js";
import { type Duid, isDuidLlOf } from "./duid.js";

/** What one VIF's guest was last seen sending as its DHCPv6 identity. */
export interface DuidObservation {
  /** The VIF's host-side device, where the message entered. */
  device: string;
  /** The VIF's MAC as the agent knows it; the reservation is keyed by its DUID-LL. */
  mac: Mac;
  duid: Duid;
  /** The IAs of the last message (the IAID a server binds the address to). */
  ias: IdentityAssociation[];
  /** Whether `duid` is the DUID-LL of `mac`: only then does the guest get its reserved address. */
  matches: boolean;
  /** The DUID-LL the reservation expects. */
  expected: string;
  lastMessage: string;
  /** Unix ms of the first and last message with this DUID. */
  firstSeen: number;
  lastSeen: number;
  /** Messages seen with this DUID (each copy the log rules passed on, retransmissions included). */
  messages: number;
}

/** One DUID sent from several VIFs (cloned templates): a server gives all of them one lease. */
export interface SharedDuid {
  duid: string;
  devices: string[];
}

/**
 * The DHCPv6 identity evidence, one entry per VIF device: the latest DUID its guest sent and
 * whether it matches. A VIF that sends another DUID starts a new entry; a VIF that gets another
 * MAC (a new VM on a reused device) too. Bounded by the agent's ports: `retain` drops the rest.
 */
export class DhcpIdentityStore {
  private readonly byDevice = new Map<string, DuidObservation>();
  /** duid hex -> devices sending it. */
  private readonly byDuid = new Map<string, Set<string>>();

  record(device: string, mac: Mac, message: Dhcpv6ClientMessage, now: number): DuidObservation | undefined {
    const duid = message.clientId;
    if (duid === undefined) return undefined;
    const previous = this.byDevice.get(device);
    if (previous !== undefined && previous.duid.hex === duid.hex && previous.mac === mac) {
      previous.lastSeen = now;
      previous.messages += 1;
      previous.lastMessage = message.messageName;
      if (message.ias.length > 0) previous.ias = message.ias;
      return previous;
    }
    this.forget(device);
    return this.insert({
      device,
      mac,
      duid,
      ias: message.ias,
      matches: isDuidLlOf(duid, mac),
      expected: duidLl(mac),
      lastMessage: message.messageName,
      firstSeen: now,
      lastSeen: now,
      messages: 1,
    });
  }

  private insert(observation: DuidObservation): DuidObservation {
    this.byDevice.set(observation.device, observation);
    let devices = this.byDuid.get(observation.duid.hex);
    if (devices === undefined) {
      devices = new Set();
      this.byDuid.set(observation.duid.hex, devices);
    }
    devices.add(observation.device);
    return observation;
  }

  /** Puts back what a saved file held (src/dhcp-observe/identity-file.ts); `matches` is worked out again. */
  restore(saved: readonly Omit<DuidObservation, "matches" | "expected">[]): void {
    for (const entry of saved) {
      this.forget(entry.device);
      this.insert({ ...entry, matches: isDuidLlOf(entry.duid, entry.mac), expected: duidLl(entry.mac) });
    }
  }

  get(device: string): DuidObservation | undefined {
    return this.byDevice.get(device);
  }

  /** Drops a VIF's evidence (its port went away). */
  forget(device: string): void {
    const observation = this.byDevice.get(device);
    if (observation === undefined) return;
    this.byDevice.delete(device);
    const devices = this.byDuid.get(observation.duid.hex);
    devices?.delete(device);
    if (devices?.size === 0) this.byDuid.delete(observation.duid.hex);
  }

  /** Keeps only the devices in `devices` (the agent's ports now). */
  retain(devices: ReadonlySet<string>): void {
    for (const device of [...this.byDevice.keys()]) if (!devices.has(device)) this.forget(device);
  }

  list(): DuidObservation[] {
    return [...this.byDevice.values()];
  }

  mismatching(): DuidObservation[] {
    return this.list().filter((observation) => !observation.matches);
  }

  /** Every DUID seen from more than one VIF, with those VIFs' devices (sorted). */
  sharedDuids(): SharedDuid[] {
    const shared: SharedDuid[] = [];
    for (const [duid, devices] of this.byDuid) {
      if (devices.size > 1) shared.push({ duid, devices: [...devices].sort() });
    }
    return shared;
  }

  /** The other devices that send `device`'s DUID. */
  sharing(device: string): string[] {
    const observation = this.byDevice.get(device);
    if (observation === undefined) return [];
    return [...(this.byDuid.get(observation.duid.hex) ?? [])].filter((other) => other !== device).sort();
  }

  get size(): number {
    return this.byDevice.size;
  }
}

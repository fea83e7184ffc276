import type { Mac } from "../addressing/index.js";
import { parseDhcpv6Packet } from "./dhcpv6-message.js";
import type { DhcpIdentityStore, DuidObservation } from "./identity-store.js";
import { type NflogPacket, type NflogReader, openNflog } from "./nflog.js";

export interface DhcpObserverOptions {
  /** The NFLOG group the firewall's DHCPv6 log rules write to. */
  group: number;
  netns?: string | undefined;
  store: DhcpIdentityStore;
  /** The MAC of the agent's VIF on `device`, or undefined for a device that is none of ours. */
  portMac: (device: string) => Mac | undefined;
  /** Called for every message recorded (after the store has it). */
  onObservation?: (observation: DuidObservation) => void;
  now?: () => number;
}

export interface DhcpObserverStats {
  /** Logged packets handed to the observer. */
  packets: number;
  /** Messages recorded in the store. */
  recorded: number;
  /** Packets that are no valid DHCPv6 client message (what a hostile guest may send). */
  refused: number;
  /** Packets from a device that is none of the agent's VIFs (yet). */
  unknownPort: number;
}

/**
 * Turns the log rules' copies of guests' DHCPv6 client messages into identity evidence: which
 * VIF (the bridge port the frame entered by) sent which DUID. Never in the forwarding path:
 * the rules only hand over copies, rate-limited per port, and nothing here can hold a packet.
 */
export class DhcpObserver {
  private readonly counts: DhcpObserverStats = { packets: 0, recorded: 0, refused: 0, unknownPort: 0 };
  private reader: NflogReader | undefined;
  private lastRefusal: string | undefined;

  constructor(private readonly options: DhcpObserverOptions) {}

  /** Starts reading the NFLOG group (throws a V6Error if it cannot be bound). */
  start(): void {
    if (this.reader !== undefined) return;
    this.reader = openNflog({ group: this.options.group, netns: this.options.netns }, (packets) => this.handle(packets));
  }

  /** One batch of logged packets (public so it can be fed without a kernel). Never throws. */
  handle(packets: readonly NflogPacket[]): void {
    for (const packet of packets) {
      this.counts.packets += 1;
      try {
        this.handleOne(packet);
      } catch (error) {
        // A bug here must not stop the evidence for every other packet.
        this.counts.refused += 1;
        this.lastRefusal = `internal: ${(error as Error).message}`;
      }
    }
  }

  private handleOne(packet: NflogPacket): void {
    // On a bridge the port is the physical input device; indev is the bridge itself.
    const device = packet.physindevName ?? packet.indevName;
    const mac = device === undefined ? undefined : this.options.portMac(device);
    if (device === undefined || mac === undefined) {
      this.counts.unknownPort += 1;
      return;
    }
    const parsed = parseDhcpv6Packet(packet.payload);
    if (!parsed.ok) {
      this.counts.refused += 1;
      this.lastRefusal = `${device}: ${parsed.reason}`;
      return;
    }
    const observation = this.options.store.record(device, mac, parsed.message, (this.options.now ?? Date.now)());
    if (observation === undefined) return;
    this.counts.recorded += 1;
    this.options.onObservation?.(observation);
  }

  stats(): DhcpObserverStats & { lastRefusal?: string; kernel?: ReturnType<NflogReader["stats"]> } {
    return {
      ...this.counts,
      ...(this.lastRefusal === undefined ? {} : { lastRefusal: this.lastRefusal }),
      ...(this.reader === undefined ? {} : { kernel: this.reader.stats() }),
    };
  }

  close(): void {
    this.reader?.close();
    this.reader = undefined;
  }
}

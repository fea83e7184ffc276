import { join } from "node:path";
import type { Mac } from "../addressing/index.js";
import type { IdentityLookup } from "../agent/vif-report.js";
import {
  DhcpIdentityStore,
  DhcpObserver,
  type DuidObservation,
  IDENTITY_FILE_VERSION,
  observedDuidOf,
  parseSavedObservations,
  savedObservations,
} from "../dhcp-observe/index.js";
import { DHCP6_LOG_GROUP } from "../firewall/dhcp6-log.js";
import type { Logger } from "../log.js";
import type { MetricsSink } from "./metrics-sink.js";
import { StateStore } from "./state-store.js";

/** What the evidence needs of the agent: whose port a device is, and a way to report again. */
export interface IdentityPorts {
  portOf(device: string): { vmUuid: string; mac: Mac } | undefined;
  identityChanged(devices: readonly string[]): void;
}

/** Saves are coalesced: a burst of first Solicits (a host booting its guests) is one write. */
const SAVE_DELAY_MS = 2_000;

function identityFile(stateDir: string, logger?: Logger) {
  return new StateStore({
    path: join(stateDir, "dhcp-identities.json"),
    version: IDENTITY_FILE_VERSION,
    validate: parseSavedObservations,
    empty: () => [],
    ...(logger === undefined ? {} : { logger }),
  });
}

/** The evidence as the daemon saw it last, for `v6agent diag` (a process of its own); reads only. */
export async function loadIdentityEvidence(stateDir: string): Promise<DhcpIdentityStore> {
  const store = new DhcpIdentityStore();
  store.restore(await identityFile(stateDir).load({ readOnly: true }));
  return store;
}

/**
 * The daemon's DHCPv6 identity evidence (src/dhcp-observe): the store behind `vif.report`'s
 * `observedDuid`, fed by the NFLOG group the firewall's log rules write to, kept in the state
 * directory, and counted in the metrics. Evidence is an extra: if the group cannot be bound
 * (another listener holds it) the agent runs on without it and says so.
 */
export class DhcpIdentityEvidence {
  readonly store = new DhcpIdentityStore();
  readonly lookup: IdentityLookup = (device) => observedDuidOf(this.store, device);
  private readonly file;
  private observer: DhcpObserver | undefined;
  private saveTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: { stateDir: string; netns?: string | undefined; logger: Logger; metrics: MetricsSink }) {
    this.file = identityFile(options.stateDir, options.logger.child({ component: "dhcp-identity" }));
  }

  async load(): Promise<void> {
    try {
      this.store.restore(await this.file.load());
    } catch (error) {
      this.options.logger.warn({ err: error }, "DHCPv6 identity evidence not restored; starting without it");
    }
    this.count();
  }

  /** Binds the NFLOG group and starts recording. */
  start(ports: IdentityPorts): void {
    const observer = new DhcpObserver({
      group: DHCP6_LOG_GROUP,
      netns: this.options.netns,
      store: this.store,
      portMac: (device) => ports.portOf(device)?.mac,
      onObservation: (observation) => {
        if (observation.messages !== 1) return;
        // A new DUID on this port: its report changes, and so do those of ports sharing it.
        ports.identityChanged([observation.device, ...this.store.sharing(observation.device)]);
        this.logNew(observation);
        this.changed();
      },
    });
    try {
      observer.start();
      this.observer = observer;
    } catch (error) {
      this.options.logger.warn({ err: error, group: DHCP6_LOG_GROUP }, "DHCPv6 identity evidence off: cannot read the NFLOG group");
    }
  }

  /** After a reconcile: forgets ports that are gone. */
  retain(devices: Iterable<string | undefined>): void {
    const before = this.store.size;
    this.store.retain(new Set([...devices].filter((device): device is string => device !== undefined)));
    if (this.store.size !== before) this.changed();
  }

  observations(): DuidObservation[] {
    return this.store.list();
  }

  async close(): Promise<void> {
    this.observer?.close();
    if (this.saveTimer !== undefined) {
      clearTimeout(this.saveTimer);
      this.saveTimer = undefined;
      await this.save();
    }
  }

  private changed(): void {
    this.count();
    if (this.saveTimer !== undefined) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      void this.save();
    }, SAVE_DELAY_MS);
    this.saveTimer.unref();
  }

  private async save(): Promise<void> {
    await this.file.save(savedObservations(this.store)).catch((error: unknown) => {
      this.options.logger.warn({ err: error }, "DHCPv6 identity evidence not saved");
    });
  }

  private count(): void {
    this.options.metrics.setDuidEvidence?.({
      mismatched: this.store.mismatching().length,
      shared: this.store.sharedDuids().reduce((sum, group) => sum + group.devices.length, 0),
    });
  }

  private logNew(observation: DuidObservation): void {
    const fields = { device: observation.device, mac: observation.mac, duid: observation.duid.hex, type: observation.duid.typeName };
    if (observation.matches) this.options.logger.info(fields, "guest sends its DUID-LL");
    else this.options.logger.warn({ ...fields, expected: observation.expected }, "guest sends a DUID its reservation does not know");
  }
}

import type { Logger } from "pino";
import { V6Error } from "../errors.js";
import type { RequestId, VifReport } from "../protocol/index.js";
import type { ResultStore, StoredResponse } from "./result-store.js";

/** How long responses collect before one agent.ping confirms them all. */
const CONFIRM_DELAY_MS = 25;

/** What delivery needs of the live connection. */
export interface DeliveryLink {
  respond(id: RequestId, response: StoredResponse): void;
  /** A round trip whose answer proves the server read every frame sent before it. */
  ping(): Promise<unknown>;
  report(params: VifReport): Promise<unknown>;
}

/**
 * Everything the agent owes the server beyond a single frame: journalled responses, delivered
 * and then confirmed, and vif.reports, re-sent until acknowledged. A write is not a delivery
 * (the connection may already be dead): a response counts as delivered once the server answered
 * a later request of ours (one ordered stream), so unconfirmed ones go out again after the next
 * hello. Reports wait in a bounded queue while disconnected; the oldest is dropped beyond it
 * (the next agent.hello carries the full inventory anyway).
 */
export class Delivery {
  private link: DeliveryLink | undefined;
  private unconfirmed: RequestId[] = [];
  private readonly reports: QueuedReport[] = [];

  constructor(
    private readonly store: ResultStore,
    private readonly maxPendingReports: number,
    private readonly log: Logger | undefined,
  ) {}

  /** The server answered hello: send what finished while we were away, then the unacknowledged reports. */
  attach(link: DeliveryLink): number {
    this.link = link;
    const unsent = this.store.unsent();
    for (const entry of unsent) this.respond(entry.id, entry.response as StoredResponse);
    for (const report of this.reports) this.sendReport(report);
    return unsent.length;
  }

  detach(): void {
    this.link = undefined;
    this.unconfirmed = [];
    for (const report of this.reports) report.inFlight = false;
  }

  /** A journalled response: sent now when connected, else after the next hello. */
  respond(id: RequestId, response: StoredResponse): void {
    const link = this.link;
    if (link === undefined) return;
    link.respond(id, response);
    this.unconfirmed.push(id);
    // One confirmation per burst, not per result: it costs a round trip.
    if (this.unconfirmed.length === 1) setTimeout(() => this.confirm(link), CONFIRM_DELAY_MS);
  }

  report(params: VifReport): Promise<void> {
    return new Promise((resolve, reject) => {
      const entry: QueuedReport = { params, inFlight: false, resolve, reject };
      this.reports.push(entry);
      if (this.reports.length > this.maxPendingReports) {
        const dropped = this.reports.shift() as QueuedReport;
        this.log?.warn({ mac: dropped.params.mac }, "report queue full: dropped the oldest vif.report");
        dropped.reject(new V6Error("unavailable", "report queue full: dropped before the server acknowledged it"));
      }
      this.sendReport(entry);
    });
  }

  rejectReports(reason: string): void {
    for (const report of this.reports.splice(0)) report.reject(new V6Error("unavailable", reason));
  }

  private sendReport(report: QueuedReport): void {
    const link = this.link;
    if (link === undefined || report.inFlight) return;
    report.inFlight = true;
    link.report(report.params).then(
      () => {
        const index = this.reports.indexOf(report);
        if (index >= 0) this.reports.splice(index, 1);
        report.resolve();
      },
      // A lost connection leaves the report queued for the next one.
      () => {
        report.inFlight = false;
      },
    );
  }

  private confirm(link: DeliveryLink): void {
    if (this.link !== link || this.unconfirmed.length === 0) return;
    const batch = this.unconfirmed;
    this.unconfirmed = [];
    link.ping().then(
      () => {
        for (const id of batch) this.store.markSent(id);
      },
      () => undefined,
    );
  }
}

interface QueuedReport {
  params: VifReport;
  inFlight: boolean;
  resolve: () => void;
  reject: (error: Error) => void;
}

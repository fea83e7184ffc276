import { V6Error } from "../errors.js";
import type { MethodName, MethodResult } from "../protocol/index.js";
import type { VifReport } from "../protocol/schemas.js";

/** One entry of `GET /v1/reports`. */
export interface ReportEntry {
  seq: number;
  hostId: string;
  method: string;
  params: unknown;
}

/**
 * The lab talks to its management server only through the reference server's HTTP API, exactly
 * as an integrator would (`v6agent mgmt --api`): list agents, send commands, read reports.
 */
export class MgmtClient {
  constructor(
    readonly apiUrl: string,
    private readonly token: string,
  ) {}

  private get headers(): Record<string, string> {
    return { authorization: `Bearer ${this.token}` };
  }

  async agentConnected(hostId: string): Promise<boolean> {
    const response = await fetch(`${this.apiUrl}/v1/agents/${encodeURIComponent(hostId)}`, { headers: this.headers });
    if (response.status === 404) return false;
    const body = (await response.json()) as { connected?: boolean };
    return body.connected === true;
  }

  /** Sends a command to an agent; an agent's JSON-RPC error becomes a V6Error with its message. */
  async call<M extends MethodName>(hostId: string, method: M, params: unknown, timeoutMs = 120_000): Promise<MethodResult<M>> {
    const response = await fetch(`${this.apiUrl}/v1/agents/${encodeURIComponent(hostId)}/commands`, {
      method: "POST",
      headers: { ...this.headers, "content-type": "application/json" },
      body: JSON.stringify({ method, params, timeoutMs }),
    });
    const body = (await response.json()) as { result?: unknown; error?: { message?: string; data?: { field?: string } } };
    if (body.error !== undefined) {
      throw new V6Error("host_failure", `${method} failed: ${body.error.message ?? JSON.stringify(body.error)}`, {
        field: body.error.data?.field,
      });
    }
    return body.result as MethodResult<M>;
  }

  async reports(since: number, method: string, waitMs = 0): Promise<{ reports: ReportEntry[]; last: number }> {
    const response = await fetch(`${this.apiUrl}/v1/reports?since=${since}&method=${encodeURIComponent(method)}&waitMs=${waitMs}`, {
      headers: this.headers,
    });
    return (await response.json()) as { reports: ReportEntry[]; last: number };
  }

  /** Every VIF report so far, latest per MAC. */
  async latestVifReports(): Promise<Map<string, VifReport>> {
    const { reports } = await this.reports(0, "vif.report");
    const latest = new Map<string, VifReport>();
    for (const entry of reports) {
      const report = entry.params as VifReport;
      latest.set(report.mac, report);
    }
    return latest;
  }

  /** Waits until every MAC in `macs` has a report whose state passes `accept`. */
  async waitForVifReports(
    macs: readonly string[],
    accept: (report: VifReport) => boolean,
    timeoutMs: number,
  ): Promise<Map<string, VifReport>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const latest = await this.latestVifReports();
      if (macs.every((mac) => latest.has(mac) && accept(latest.get(mac) as VifReport))) return latest;
      if (Date.now() > deadline) {
        const missing = macs.filter((mac) => !(latest.has(mac) && accept(latest.get(mac) as VifReport)));
        throw new V6Error("timeout", `no vif.report for ${missing.join(", ")} within ${timeoutMs} ms`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

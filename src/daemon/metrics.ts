import { createServer, type Server } from "node:http";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { VifReport } from "../agent/vif-report.js";
import { dropReasons, type PortCounters } from "../firewall/model.js";
import type { Logger } from "../log.js";
import type { MetricsSink } from "./metrics-sink.js";
import { type PortCoverage, portCoverage } from "./port-coverage.js";

/** What the metrics read at scrape time: the agent's guest ports and the firewall's live counters. */
export interface MetricsSource {
  vifs(): readonly VifReport[];
  counters(): Promise<PortCounters[]>;
}

/**
 * Optional Prometheus metrics (issue 6, issue 19): commands by method and outcome, their
 * durations, the management connection's state, and VIFs whose guest sends a DHCPv6 DUID its
 * reservation does not know (or one another VIF sends too), recorded as they happen; guest
 * ports with and without live rules and the firewall's drop counters per port, VM and reason,
 * read from the firewall when scraped, so they are right after every change, not after the
 * next reconcile.
 */
export class AgentMetrics implements MetricsSink {
  readonly registry = new Registry();
  /** The firewall read of the scrape under way: every collect callback of one scrape shares it. */
  private scrape: Promise<PortCoverage | undefined> | undefined;
  private readonly commands = new Counter({
    name: "v6agent_commands_total",
    help: "Commands executed, by method and outcome (ok or an error code)",
    labelNames: ["method", "outcome"] as const,
    registers: [this.registry],
  });
  private readonly durations = new Histogram({
    name: "v6agent_command_duration_seconds",
    help: "Command execution time",
    labelNames: ["method"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly duidMismatched = new Gauge({
    name: "v6agent_dhcp6_duid_mismatched_vifs",
    help: "VIFs whose guest sends a DHCPv6 DUID other than the DUID-LL of its MAC (it gets no reserved address)",
    registers: [this.registry],
  });
  private readonly duidShared = new Gauge({
    name: "v6agent_dhcp6_duid_shared_vifs",
    help: "VIFs whose guest sends a DHCPv6 DUID that another VIF on this host sends too",
    registers: [this.registry],
  });
  private readonly connected = new Gauge({
    name: "v6agent_management_connected",
    help: "1 while the agent holds a registered connection to a management server",
    registers: [this.registry],
  });
  private readonly readErrors = new Counter({
    name: "v6agent_firewall_read_errors_total",
    help: "Scrapes for which the firewall's counters could not be read (the port metrics are then absent)",
    registers: [this.registry],
    // Read after this scrape's firewall read, which counts its own failure.
    collect: async () => void (await this.coverage()),
  });

  constructor(
    private readonly source: MetricsSource,
    private readonly logger?: Logger,
  ) {
    const metrics = this;
    new Gauge({
      name: "v6agent_ports_protected",
      help: "Guest ports the agent knows whose rules the firewall holds now",
      registers: [this.registry],
      async collect() {
        this.set((await metrics.coverage())?.protected.length ?? 0);
      },
    });
    new Gauge({
      name: "v6agent_ports_unprotected",
      help: "Guest ports the agent knows whose rules the firewall does not hold (see v6agent status)",
      registers: [this.registry],
      async collect() {
        this.set((await metrics.coverage())?.unprotected.length ?? 0);
      },
    });
    new Counter({
      name: "v6agent_port_drops_packets_total",
      help: "Packets dropped, per device (guest port, or uplink for rogueRouter), its VM and reason; a series appears with its first drop",
      labelNames: ["port", "vm", "reason"] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const drop of (await metrics.coverage())?.drops ?? []) {
          this.inc({ port: drop.port, vm: drop.vm ?? "", reason: drop.reason }, drop.packets);
        }
      },
    });
    new Counter({
      name: "v6agent_drops_packets_total",
      help: "Packets dropped at this host's guest ports and uplinks, by reason (the sum of the per-port counters)",
      labelNames: ["reason"] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        const drops = (await metrics.coverage())?.drops ?? [];
        for (const reason of dropReasons) {
          this.inc(
            { reason },
            drops.filter((drop) => drop.reason === reason).reduce((sum, drop) => sum + drop.packets, 0),
          );
        }
      },
    });
  }

  observeCommand(method: string, outcome: string, seconds: number): void {
    this.commands.inc({ method, outcome });
    this.durations.observe({ method }, seconds);
  }

  setConnected(connected: boolean): void {
    this.connected.set(connected ? 1 : 0);
  }

  /** The metrics text; the port metrics come from one firewall read made now. */
  async text(): Promise<string> {
    this.scrape = undefined;
    return this.registry.metrics();
  }

  /** The ports and drops of this scrape (one firewall read for every collect callback of it). */
  private coverage(): Promise<PortCoverage | undefined> {
    if (this.scrape === undefined) {
      this.scrape = this.source.counters().then(
        (counters) => portCoverage(this.source.vifs(), counters),
        (error: unknown) => {
          this.readErrors.inc();
          this.logger?.warn({ err: error }, "metrics: the firewall's counters could not be read");
          return undefined;
        },
      );
    }
    return this.scrape;
  }

  setDuidEvidence(counts: { mismatched: number; shared: number }): void {
    this.duidMismatched.set(counts.mismatched);
    this.duidShared.set(counts.shared);
  }

  /** Serves /metrics on `host:port` (loopback by default in the config). */
  async listen(host: string, port: number): Promise<Server> {
    const server = createServer((request, response) => {
      if (request.url !== "/metrics") {
        response.writeHead(404).end();
        return;
      }
      this.text().then(
        (text) => response.writeHead(200, { "Content-Type": this.registry.contentType }).end(text),
        (error: unknown) => response.writeHead(500).end(String(error)),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, resolve);
    });
    return server;
  }
}

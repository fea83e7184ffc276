import { createServer, type Server } from "node:http";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { dropReasons, type PortCounters } from "../firewall/model.js";
import type { MetricsSink } from "./metrics-sink.js";

/**
 * Optional Prometheus metrics (issue 6): commands by method and outcome, their durations,
 * protected ports, firewall drops by reason, the management connection's state, and VIFs whose
 * guest sends a DHCPv6 DUID its reservation does not know (or one another VIF sends too).
 */
export class AgentMetrics implements MetricsSink {
  readonly registry = new Registry();
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
  private readonly ports = new Gauge({
    name: "v6agent_ports_protected",
    help: "Guest ports with rules in place",
    registers: [this.registry],
  });
  private readonly drops = new Gauge({
    name: "v6agent_firewall_drops_packets",
    help: "Packets dropped at guest ports, by reason (from the firewall's counters)",
    labelNames: ["reason"] as const,
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

  observeCommand(method: string, outcome: string, seconds: number): void {
    this.commands.inc({ method, outcome });
    this.durations.observe({ method }, seconds);
  }

  setProtectedPorts(count: number): void {
    this.ports.set(count);
  }

  setConnected(connected: boolean): void {
    this.connected.set(connected ? 1 : 0);
  }

  /** Replaces the drop gauges with the sums of the firewall's per-port counters. */
  setDrops(counters: readonly PortCounters[]): void {
    for (const reason of dropReasons) {
      this.drops.set(
        { reason },
        counters.reduce((sum, port) => sum + port[reason].packets, 0),
      );
    }
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
      this.registry.metrics().then(
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

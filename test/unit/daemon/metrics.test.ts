import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { Mac } from "../../../src/addressing/index.js";
import { vifReport } from "../../../src/agent/vif-report.js";
import { AgentMetrics } from "../../../src/daemon/metrics.js";
import { type DropReason, type PortCounters, zeroCounters } from "../../../src/firewall/model.js";

const VM_A = "6c52f99d-0000-4000-8000-00000000000a";
const VM_B = "6c52f99d-0000-4000-8000-00000000000b";

/** The firewall's counters of a device, with these drops. */
function counters(device: string, drops: Partial<Record<DropReason, number>> = {}): PortCounters {
  const result = zeroCounters(device);
  for (const [reason, packets] of Object.entries(drops)) result[reason as DropReason] = { packets, bytes: packets * 100 };
  return result;
}

/** A source whose agent ports and firewall counters the test changes between scrapes, as commands and guests would. */
function host() {
  const state = {
    vifs: [] as ReturnType<typeof vifReport>[],
    counters: [] as PortCounters[],
    fail: false,
    reads: 0,
  };
  return {
    state,
    source: {
      vifs: () => state.vifs,
      counters: async () => {
        state.reads += 1;
        if (state.fail) throw new Error("nft: no table");
        return state.counters.map((counter) => structuredClone(counter));
      },
    },
  };
}

const port = (vmUuid: string, mac: string, device: string) =>
  vifReport({ vmUuid, mac: mac as Mac, state: "protected", device, bridge: "br0", networkId: "net1" });

describe("AgentMetrics", () => {
  const servers: import("node:http").Server[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
  });

  async function scrape(metrics: AgentMetrics): Promise<string> {
    if (servers.length === 0) servers.push(await metrics.listen("127.0.0.1", 0));
    const address = servers[0]?.address() as AddressInfo;
    return (await fetch(`http://127.0.0.1:${address.port}/metrics`)).text();
  }

  it("serves commands and the connection state as recorded, and 404 elsewhere", async () => {
    const { source } = host();
    const metrics = new AgentMetrics(source);
    metrics.observeCommand("nic.plug", "ok", 0.012);
    metrics.observeCommand("nic.plug", "not_found", 0.001);
    metrics.setConnected(true);
    const text = await scrape(metrics);
    expect(text).toContain('v6agent_commands_total{method="nic.plug",outcome="ok"} 1');
    expect(text).toContain('v6agent_commands_total{method="nic.plug",outcome="not_found"} 1');
    expect(text).toContain('v6agent_command_duration_seconds_count{method="nic.plug"} 2');
    expect(text).toMatch(/^v6agent_management_connected 1$/m);
    const address = servers[0]?.address() as AddressInfo;
    expect((await fetch(`http://127.0.0.1:${address.port}/other`)).status).toBe(404);
  });

  it("ports are right at the first scrape after a plug, with no reconcile in between, and one without rules is unprotected", async () => {
    const { state, source } = host();
    const metrics = new AgentMetrics(source);
    let text = await scrape(metrics);
    expect(text).toMatch(/^v6agent_ports_protected 0$/m);
    expect(text).toMatch(/^v6agent_ports_unprotected 0$/m);
    // nic.plug: the agent shows the port and the firewall holds its rules.
    state.vifs = [port(VM_A, "52:54:00:00:00:0a", "vif1.0")];
    state.counters = [counters("vif1.0")];
    text = await scrape(metrics);
    expect(text).toMatch(/^v6agent_ports_protected 1$/m);
    // A second port whose rules are gone (deleted by hand): the agent still shows it.
    state.vifs = [...state.vifs, port(VM_B, "52:54:00:00:00:0b", "vif2.0")];
    text = await scrape(metrics);
    expect(text).toMatch(/^v6agent_ports_protected 1$/m);
    expect(text).toMatch(/^v6agent_ports_unprotected 1$/m);
  });

  it("drop counters per port, VM and reason are read from the firewall at each scrape, plus the host's total per reason", async () => {
    const { state, source } = host();
    const metrics = new AgentMetrics(source);
    state.vifs = [port(VM_A, "52:54:00:00:00:0a", "vif1.0"), port(VM_B, "52:54:00:00:00:0b", "vif2.0")];
    state.counters = [
      counters("vif1.0", { ra: 12, dhcpv6Server: 2 }),
      counters("vif2.0", { ra: 1, spoof: 5 }),
      counters("eth0", { rogueRouter: 4 }),
    ];
    let text = await scrape(metrics);
    expect(text).toContain("# TYPE v6agent_port_drops_packets_total counter");
    expect(text).toContain(`v6agent_port_drops_packets_total{port="vif1.0",vm="${VM_A}",reason="ra"} 12`);
    expect(text).toContain(`v6agent_port_drops_packets_total{port="vif1.0",vm="${VM_A}",reason="dhcpv6Server"} 2`);
    expect(text).toContain(`v6agent_port_drops_packets_total{port="vif2.0",vm="${VM_B}",reason="spoof"} 5`);
    // An uplink's router guard has no VM.
    expect(text).toContain('v6agent_port_drops_packets_total{port="eth0",vm="",reason="rogueRouter"} 4');
    // Only counters that counted something are series (a host of 1,000 ports would have 7,000 zeros).
    expect(text).not.toContain('port="vif1.0",vm="6c52f99d-0000-4000-8000-00000000000a",reason="mld"');
    expect(text).toContain('v6agent_drops_packets_total{reason="ra"} 13');
    expect(text).toContain('v6agent_drops_packets_total{reason="mld"} 0');
    // A guest keeps attacking: the next scrape has the firewall's new count, no timer involved.
    state.counters[0] = counters("vif1.0", { ra: 40, dhcpv6Server: 2 });
    text = await scrape(metrics);
    expect(text).toContain(`v6agent_port_drops_packets_total{port="vif1.0",vm="${VM_A}",reason="ra"} 40`);
    expect(text).toContain('v6agent_drops_packets_total{reason="ra"} 41');
  });

  it("one firewall read serves a whole scrape; a failed read is counted and the scrape still answers", async () => {
    const { state, source } = host();
    const metrics = new AgentMetrics(source);
    await scrape(metrics);
    expect(state.reads).toBe(1);
    state.fail = true;
    const text = await scrape(metrics);
    expect(text).toMatch(/^v6agent_firewall_read_errors_total 1$/m);
    expect(text).toMatch(/^v6agent_ports_protected 0$/m);
  });
});

import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { AgentMetrics } from "../../../src/daemon/metrics.js";
import { dropReasons, type PortCounters } from "../../../src/firewall/model.js";

const zero = { packets: 0, bytes: 0 };

describe("AgentMetrics", () => {
  it("serves commands, ports, drops by reason and connection state on /metrics", async () => {
    const metrics = new AgentMetrics();
    metrics.observeCommand("nic.plug", "ok", 0.012);
    metrics.observeCommand("nic.plug", "not_found", 0.001);
    metrics.setProtectedPorts(3);
    metrics.setConnected(true);
    metrics.setDrops([
      {
        device: "vnet1",
        ra: { packets: 12, bytes: 1200 },
        dhcpv6Server: { packets: 2, bytes: 300 },
        spoof: zero,
        fragment: zero,
        ipv4: zero,
        mld: zero,
        rogueRouter: zero,
      },
      {
        device: "vnet2",
        ra: { packets: 1, bytes: 100 },
        dhcpv6Server: zero,
        spoof: { packets: 5, bytes: 500 },
        fragment: zero,
        ipv4: zero,
        mld: zero,
        rogueRouter: zero,
      },
      // A guarded uplink that dropped a second router's RAs.
      {
        device: "uplink0",
        ...Object.fromEntries(dropReasons.map((r) => [r, zero])),
        rogueRouter: { packets: 4, bytes: 400 },
      } as PortCounters,
    ]);
    const server = await metrics.listen("127.0.0.1", 0);
    try {
      const port = (server.address() as AddressInfo).port;
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(text).toContain('v6agent_commands_total{method="nic.plug",outcome="ok"} 1');
      expect(text).toContain('v6agent_commands_total{method="nic.plug",outcome="not_found"} 1');
      expect(text).toContain('v6agent_command_duration_seconds_count{method="nic.plug"} 2');
      expect(text).toContain("v6agent_ports_protected 3");
      expect(text).toContain('v6agent_firewall_drops_packets{reason="ra"} 13');
      expect(text).toContain('v6agent_firewall_drops_packets{reason="rogueRouter"} 4');
      expect(text).toContain('v6agent_firewall_drops_packets{reason="mld"} 0');
      expect(text).toContain('v6agent_firewall_drops_packets{reason="spoof"} 5');
      expect(text).toContain("v6agent_management_connected 1");
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

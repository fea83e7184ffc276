import { describe, expect, it } from "vitest";
import { parseIpv6Network, parseMac } from "../../../src/addressing/index.js";
import { Agent } from "../../../src/agent/agent.js";
import type { VifReport } from "../../../src/agent/vif-report.js";
import { createLogger } from "../../../src/log.js";
import type { ObservedDuid } from "../../../src/protocol/index.js";
import { FakeFirewall, fakeBackend, MemoryStore } from "../../support/fakes/index.js";
import { until } from "../../support/wait.js";

const VM = "6f1c2a3e-8d4b-4c1e-9a7f-0b1c2d3e4f50";
const MAC = parseMac("52:54:00:00:00:0a");

describe("the agent's reports carry the DHCPv6 identity its guests send (fakes)", () => {
  it("reports observedDuid, and reports again when identityChanged says it changed", async () => {
    const fakes = fakeBackend("agent");
    const identities = new Map<string, ObservedDuid>();
    const reports: VifReport[] = [];
    const agent = new Agent({
      backend: fakes.backend,
      firewall: new FakeFirewall(fakes.journal),
      store: new MemoryStore(),
      logger: createLogger("silent"),
      report: (r) => reports.push(r),
      identity: (device) => identities.get(device),
    });
    await agent.start();
    await agent.ensureNetwork({ networkId: "net-1", network: parseIpv6Network("2001:db8:1:1::/64") });
    fakes.hypervisor.addVm(VM);
    const plugged = await agent.plugNic(VM, { networkId: "net-1", mac: MAC });
    expect(plugged.observedDuid).toBeUndefined();
    const device = plugged.device as string;
    expect(agent.portOf(device)).toEqual({ vmUuid: VM, mac: MAC });
    expect(agent.portOf("nope0")).toBeUndefined();

    const llt: ObservedDuid = { duid: "00:01:00:01:32:a2:fc:fa:52:54:00:00:00:0a", type: 1, typeName: "DUID-LLT", matchesDuidLL: false };
    identities.set(device, llt);
    agent.identityChanged([device, "nope0"]);
    const again = await until(() => reports.find((r) => r.observedDuid !== undefined), "the report with the DUID");
    expect(again).toMatchObject({ mac: MAC, state: "protected", observedDuid: llt });
    // Nothing changed since: no report.
    const count = reports.length;
    agent.identityChanged([device]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(reports.length).toBe(count);
    expect(agent.inventory().vifs[0]?.observedDuid).toEqual(llt);
  });
});

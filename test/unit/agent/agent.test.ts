import { describe, expect, it } from "vitest";
import { type Mac, parseInterfaceName, parseIpv6Network, parseMac } from "../../../src/addressing/index.js";
import { Agent } from "../../../src/agent/agent.js";
import { findNic } from "../../../src/agent/desired-state.js";
import type { VifReport } from "../../../src/agent/vif-report.js";
import { V6Error } from "../../../src/errors.js";
import { createLogger } from "../../../src/log.js";
import { FakeFirewall, fakeBackend, MemoryStore } from "../../support/fakes/index.js";
import { until } from "../../support/wait.js";

const VM = "6f1c2a3e-8d4b-4c1e-9a7f-0b1c2d3e4f50";
const OTHER_VM = "7a2d3b4f-9e5c-4d2f-8b80-1c2d3e4f5061";
const MAC = parseMac("52:54:00:00:00:0a");
const MAC_B = parseMac("52:54:00:00:00:0b");
const NETWORK = { networkId: "net-1", network: parseIpv6Network("2001:db8:1:1::/64") };

/** An agent core on fakes; `names` says who names guest devices (KVM: the agent; XenServer: the hypervisor). */
async function setup(names: "agent" | "hypervisor" = "agent") {
  const fakes = fakeBackend(names);
  const firewall = new FakeFirewall(fakes.journal);
  const store = new MemoryStore();
  const reports: VifReport[] = [];
  const agent = new Agent({ backend: fakes.backend, firewall, store, logger: createLogger("silent"), report: (r) => reports.push(r) });
  await agent.start();
  await agent.ensureNetwork(NETWORK);
  fakes.journal.clear();
  return { ...fakes, agent, firewall, store, reports };
}

const reportsOf = (reports: readonly VifReport[], mac: Mac) => reports.filter((report) => report.mac === mac);

describe("the agent core (fakes, no root)", () => {
  it("installs a NIC's rules under the name it chose before it attaches the NIC, then reports it protected", async () => {
    const { agent, hypervisor, firewall, journal, reports } = await setup("agent");
    hypervisor.addVm(VM);
    const report = await agent.plugNic(VM, { networkId: "net-1", mac: MAC, ipv6: ["2001:db8:1:1::a"] });
    const tap = "t52540000000a";
    expect(journal.indexOf(`firewall.upsert ${tap}`)).toBeGreaterThanOrEqual(0);
    expect(journal.indexOf(`firewall.upsert ${tap}`)).toBeLessThan(journal.indexOf(`hypervisor.attach ${MAC}`));
    expect(report).toMatchObject({ state: "protected", device: tap, bridge: "br-net-1", ipv6: ["2001:db8:1:1::a"] });
    expect(firewall.ports.get(tap)).toMatchObject({ mac: MAC, ipv6: ["2001:db8:1:1::a"], linkLocals: ["fe80::5054:ff:fe00:a"] });
    expect(reportsOf(reports, MAC).map((r) => r.state)).toEqual(["protected"]);
  });

  it("rolls back when the attach fails: the desired state as before, the rules of the port never made removed, no report", async () => {
    const { agent, hypervisor, firewall, store, reports } = await setup("agent");
    hypervisor.addVm(VM);
    hypervisor.faults.failNext("attachNic", new V6Error("hypervisor_failure", "libvirt said no"));
    await expect(agent.plugNic(VM, { networkId: "net-1", mac: MAC })).rejects.toMatchObject({ code: "hypervisor_failure" });
    expect(findNic(store.current, MAC)).toBeUndefined();
    expect(findNic(agent.state, MAC)).toBeUndefined();
    expect(firewall.ports.size).toBe(0);
    expect(reportsOf(reports, MAC)).toEqual([]);
  });

  it("where the hypervisor names devices, protects the device the attach made, and reports it", async () => {
    const { agent, hypervisor, firewall, journal } = await setup("hypervisor");
    hypervisor.addVm(VM);
    const report = await agent.plugNic(VM, { networkId: "net-1", mac: MAC });
    expect(report).toMatchObject({ state: "protected", device: "vif1.0" });
    expect(journal.indexOf(`hypervisor.attach ${MAC}`)).toBeLessThan(journal.indexOf("firewall.upsert vif1.0"));
    expect([...firewall.ports.keys()]).toEqual(["vif1.0"]);
  });

  it("refuses vm.deploy where the hypervisor names devices (it cannot protect them before they exist)", async () => {
    const { agent } = await setup("hypervisor");
    await expect(
      agent.deployVm({
        uuid: VM,
        name: "x",
        memoryMiB: 64,
        vcpus: 1,
        boot: { kind: "disk", path: "/x" },
        nics: [{ networkId: "net-1", mac: MAC }],
      }),
    ).rejects.toMatchObject({ code: "not_implemented" });
  });

  it("refuses a MAC another VM owns, and a network the host does not have, naming the field", async () => {
    const { agent, hypervisor } = await setup();
    hypervisor.addVm(VM);
    hypervisor.addVm(OTHER_VM);
    await agent.plugNic(VM, { networkId: "net-1", mac: MAC });
    await expect(agent.plugNic(OTHER_VM, { networkId: "net-1", mac: MAC })).rejects.toMatchObject({
      code: "conflict",
      field: "params.mac",
    });
    await expect(agent.plugNic(OTHER_VM, { networkId: "net-x", mac: MAC_B })).rejects.toMatchObject({
      code: "not_found",
      field: "params.networkId",
    });
    await expect(agent.plugNic("00000000-0000-4000-8000-000000000000", { networkId: "net-1", mac: MAC_B })).rejects.toMatchObject({
      code: "not_found",
      field: "params.vmUuid",
    });
  });

  it("follows a hypervisor event for one VM: a stop removes its rules and reports it detached; a start brings them back", async () => {
    const { agent, hypervisor, firewall, reports } = await setup("hypervisor");
    hypervisor.addVm(VM);
    await agent.plugNic(VM, { networkId: "net-1", mac: MAC });
    await hypervisor.stopVm(VM);
    hypervisor.emit({ type: "vm-stopped", uuid: VM });
    await until(() => reportsOf(reports, MAC).at(-1)?.state === "detached", "the detached report");
    expect(firewall.ports.size).toBe(0);
    await hypervisor.startVm(VM);
    hypervisor.emit({ type: "vm-started", uuid: VM });
    await until(() => reportsOf(reports, MAC).at(-1)?.state === "protected", "the protected report");
    expect([...firewall.ports.keys()]).toEqual(["vif2.0"]);
    expect(reportsOf(reports, MAC).at(-1)?.device).toBe("vif2.0");
  });

  it("reports only changes: a reconcile that changes nothing sends nothing; an unplug sends unplugged once", async () => {
    const { agent, hypervisor, reports } = await setup();
    hypervisor.addVm(VM);
    await agent.plugNic(VM, { networkId: "net-1", mac: MAC });
    const before = reports.length;
    const summary = await agent.reconcile();
    expect(summary.reports).toEqual([]);
    expect(reports.length).toBe(before);
    const unplugged = await agent.unplugNic(VM, MAC);
    expect(unplugged).toMatchObject({ state: "unplugged", networkId: "net-1" });
    await agent.reconcile();
    expect(reportsOf(reports, MAC).map((r) => r.state)).toEqual(["protected", "unplugged"]);
  });

  it("protects a VM started outside the agent on a managed bridge from its first reconcile, pinned to its MAC", async () => {
    const { agent, hypervisor, firewall } = await setup();
    hypervisor.addVm(OTHER_VM, { nics: [{ mac: MAC_B, bridge: "br-net-1" }] });
    hypervisor.addVm(VM, { nics: [{ mac: MAC, bridge: "someone-elses-br" }] });
    const summary = await agent.reconcile();
    expect(summary.protectedPorts).toBe(1);
    const [port] = [...firewall.ports.values()];
    expect(port).toMatchObject({ mac: MAC_B, bridge: "br-net-1", ipv6: [], linkLocals: ["fe80::5054:ff:fe00:b"] });
    expect(agent.inventory().vifs).toEqual([
      expect.objectContaining({ vmUuid: OTHER_VM, mac: MAC_B, state: "protected", networkId: "net-1" }),
    ]);
  });

  it("state.sync: plugs what is missing, unplugs what is no longer wanted, forgets unlisted VMs, removes unwanted empty networks", async () => {
    const { agent, hypervisor, firewall, store } = await setup();
    hypervisor.addVm(VM);
    await agent.ensureNetwork({ networkId: "net-old", network: parseIpv6Network("2001:db8:9::/64") });
    await agent.plugNic(VM, { networkId: "net-1", mac: MAC_B });
    const ghost = "8b3e4c50-af6d-4e30-9c91-2d3e4f506172";
    const summary = await agent.syncState(
      [NETWORK],
      [
        { uuid: VM, nics: [{ networkId: "net-1", mac: MAC }] },
        { uuid: ghost, nics: [{ networkId: "net-1", mac: parseMac("52:54:00:00:00:0c") }] },
      ],
    );
    const nics = (await hypervisor.getVm(VM)).nics.map((nic) => nic.mac);
    expect(nics).toEqual([MAC]);
    expect([...firewall.ports.values()].map((port) => port.mac)).toEqual([MAC]);
    expect(store.current.networks.map((network) => network.networkId)).toEqual(["net-1"]);
    // A VM the hypervisor does not have (yet) is remembered, detached.
    expect(findNic(store.current, "52:54:00:00:00:0c")?.vm.uuid).toBe(ghost);
    expect(summary.protectedPorts).toBe(1);
  });

  it("refuses to change the prefix of a network with NICs on it, and to remove a network with NICs", async () => {
    const { agent, hypervisor } = await setup();
    hypervisor.addVm(VM);
    await agent.plugNic(VM, { networkId: "net-1", mac: MAC });
    await expect(agent.ensureNetwork({ networkId: "net-1", network: parseIpv6Network("2001:db8:2::/64") })).rejects.toMatchObject({
      code: "conflict",
      field: "params.prefix",
    });
    await expect(agent.removeNetwork("net-1")).rejects.toMatchObject({ code: "conflict", field: "params.networkId" });
    expect(await agent.removeNetwork("net-none")).toBe(false);
  });

  it("keeps a NIC unprotected by no one: a failed rule install fails the plug before anything is attached", async () => {
    const { agent, hypervisor, firewall, journal } = await setup("agent");
    hypervisor.addVm(VM);
    firewall.faults.failNext("upsertPort", new V6Error("firewall_failure", "nft said no"));
    await expect(agent.plugNic(VM, { networkId: "net-1", mac: MAC })).rejects.toMatchObject({ code: "firewall_failure" });
    expect(journal.indexOf("hypervisor.attach")).toBe(-1);
    expect((await hypervisor.getVm(VM)).nics).toEqual([]);
  });
});

describe("the agent core with an unreadable desired state (fail closed)", () => {
  it("changes nothing until state.sync: rules stay, commands are refused, events ignored; state.sync converges", async () => {
    const fakes = fakeBackend("agent");
    const firewall = new FakeFirewall(fakes.journal);
    // What an earlier run left live: a protected guest port on a managed bridge.
    await firewall.upsertPort({
      device: parseInterfaceName("vif1.0"),
      bridge: parseInterfaceName("br-net-1"),
      mac: MAC,
      linkLocals: ["fe80::5054:ff:fe00:a"],
      ipv6: [],
      ipv4: [],
    });
    fakes.hypervisor.addVm(VM, { nics: [{ mac: MAC, bridge: "br-net-1" }] });
    const store = new MemoryStore();
    store.problem = "state file /var/lib/v6agent/desired-state.json is corrupt (not JSON)";
    const agent = new Agent({ backend: fakes.backend, firewall, store, logger: createLogger("silent"), report: () => undefined });
    fakes.journal.clear();
    const summary = await agent.start();
    expect(summary.firewall.changed).toBe(false);
    expect(agent.stateProblem).toMatch(/is corrupt/);
    await agent.reconcile();
    fakes.hypervisor.emit({ type: "vm-stopped", uuid: VM });
    await expect(agent.ensureNetwork(NETWORK)).rejects.toMatchObject({
      code: "unavailable",
      message: expect.stringMatching(/until state.sync/),
    });
    await expect(agent.plugNic(VM, { networkId: "net-1", mac: MAC_B })).rejects.toMatchObject({ code: "unavailable" });
    expect(fakes.journal.entries.filter((entry) => entry.startsWith("firewall."))).toEqual([]);
    expect([...firewall.ports.keys()]).toEqual(["vif1.0"]);
    expect(store.saved).toEqual([]);

    await agent.syncState([NETWORK], [{ uuid: VM, nics: [{ networkId: "net-1", mac: MAC, ipv6: ["2001:db8:1:1::a"] }] }]);
    expect(agent.stateProblem).toBeUndefined();
    expect(firewall.ports.get("vif1.0")?.ipv6).toEqual(["2001:db8:1:1::a"]);
    expect(store.saved.length).toBeGreaterThan(0);
  });
});

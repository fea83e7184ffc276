import { describe, expect, it } from "vitest";
import { parseIpv6Network } from "../../../src/addressing/index.js";
import { Agent } from "../../../src/agent/agent.js";
import { commandHandler } from "../../../src/agent/dispatch.js";
import type { CommandContext } from "../../../src/channel/index.js";
import { createLogger } from "../../../src/log.js";
import { FakeFirewall, fakeBackend, MemoryStore } from "../../support/fakes/index.js";

const VM = "6f1c2a3e-8d4b-4c1e-9a7f-0b1c2d3e4f50";

async function setup() {
  const fakes = fakeBackend("agent");
  const agent = new Agent({
    backend: fakes.backend,
    firewall: new FakeFirewall(fakes.journal),
    store: new MemoryStore(),
    logger: createLogger("silent"),
    report: () => undefined,
  });
  await agent.start();
  const diagnosed: string[] = [];
  const handler = commandHandler(agent, async () => {
    diagnosed.push("diag");
    return { worst: "ok" };
  });
  const context = (method: CommandContext["method"]): CommandContext => ({ id: 1, method, signal: new AbortController().signal });
  const call = (method: CommandContext["method"], params: unknown) => handler(method, params as never, context(method));
  return { ...fakes, agent, call, diagnosed };
}

describe("dispatch: protocol methods onto the agent core", () => {
  it("turns network.ensure params into typed values, and refuses a /48 naming params.prefix", async () => {
    const { call, agent } = await setup();
    await expect(call("network.ensure", { networkId: "net-1", prefix: "2001:db8:1:1::/64", vlan: 42 })).resolves.toEqual({
      networkId: "net-1",
      bridge: "br-net-1",
    });
    expect(agent.state.networks[0]).toMatchObject({ network: parseIpv6Network("2001:db8:1:1::/64"), vlan: 42 });
    await expect(call("network.ensure", { networkId: "net-2", prefix: "2001:db8::/48" })).rejects.toMatchObject({
      code: "invalid_argument",
      field: "params.prefix",
    });
  });

  it("refuses a bad MAC and a bad VM UUID in nic.plug with the field they came in", async () => {
    const { call } = await setup();
    await call("network.ensure", { networkId: "net-1", prefix: "2001:db8:1:1::/64" });
    await expect(call("nic.plug", { vmUuid: VM, networkId: "net-1", mac: "zz:54:00:00:00:01" })).rejects.toMatchObject({
      field: "params.mac",
    });
    await expect(call("nic.plug", { vmUuid: "not-a-uuid", networkId: "net-1", mac: "52:54:00:00:00:01" })).rejects.toMatchObject({
      field: "params.vmUuid",
    });
  });

  it("answers nic.plug, nic.unplug and vm.list from the core, and host.diagnose from the diagnose callback", async () => {
    const { call, hypervisor, diagnosed } = await setup();
    hypervisor.addVm(VM);
    await call("network.ensure", { networkId: "net-1", prefix: "2001:db8:1:1::/64" });
    await expect(call("nic.plug", { vmUuid: VM, networkId: "net-1", mac: "52:54:00:00:00:01" })).resolves.toMatchObject({
      state: "protected",
      device: "t525400000001",
    });
    await expect(call("vm.list", {})).resolves.toEqual({
      vms: [
        {
          uuid: VM,
          name: expect.any(String),
          state: "running",
          nics: [{ mac: "52:54:00:00:00:01", model: "virtio", device: "t525400000001", bridge: "br-net-1" }],
        },
      ],
    });
    await expect(call("nic.unplug", { vmUuid: VM, mac: "52:54:00:00:00:01" })).resolves.toEqual({
      vmUuid: VM,
      mac: "52:54:00:00:00:01",
      unplugged: true,
    });
    await expect(call("host.diagnose", {})).resolves.toEqual({ worst: "ok" });
    expect(diagnosed).toEqual(["diag"]);
  });

  it("state.sync answers what it changed and every VIF", async () => {
    const { call, hypervisor } = await setup();
    hypervisor.addVm(VM);
    const answer = (await call("state.sync", {
      networks: [{ networkId: "net-1", prefix: "2001:db8:1:1::/64" }],
      vms: [{ uuid: VM, nics: [{ networkId: "net-1", mac: "52:54:00:00:00:01" }] }],
    })) as { changes: string[]; vifs: { state: string }[] };
    expect(answer.vifs.map((vif) => vif.state)).toEqual(["protected"]);
  });
});

import { afterEach, describe, expect, it } from "vitest";
import type { Mac } from "../../../../src/addressing/index.js";
import { isV6Error } from "../../../../src/errors.js";
import type { HypervisorEvent } from "../../../../src/hypervisor/hypervisor.js";
import { XenServerHypervisor } from "../../../../src/hypervisor/xenserver/index.js";
import { CACHED_FIELDS } from "../../../../src/hypervisor/xenserver/records.js";
import { type RunningXapiSimulator, startXapiSimulator, type XapiSimulatorOptions } from "../../../../src/lab/xapi-sim/index.js";
import { until } from "../../../support/wait.js";

/** The XenServer backend against the wire-level XAPI simulator, through the real xen-api client. */
let sim: RunningXapiSimulator | undefined;
let backend: XenServerHypervisor | undefined;

afterEach(async () => {
  await backend?.close();
  backend = undefined;
  await sim?.close();
  sim = undefined;
});

async function setup(
  options: XapiSimulatorOptions = {},
): Promise<{ sim: RunningXapiSimulator; backend: XenServerHypervisor; events: HypervisorEvent[] }> {
  sim = await startXapiSimulator(options);
  backend = new XenServerHypervisor({ url: sim.url, auth: { user: "root", password: "xenroot" }, backoff: { initialMs: 20, maxMs: 200 } });
  const events: HypervisorEvent[] = [];
  backend.onEvent((event) => events.push(event));
  await backend.connect();
  return { sim, backend, events };
}

function seedGuest(running: RunningXapiSimulator, name: string, macs: string[] = ["52:54:00:aa:00:01"]) {
  const vm = running.seed.vm({ nameLabel: name });
  const network = running.host?.network as string;
  for (const [device, mac] of macs.entries()) running.seed.vif({ vm: vm.ref, network, device: String(device), mac });
  return vm;
}

describe("XenServerHypervisor against the XAPI simulator", () => {
  it("reports facts and guest VMs (not dom0, not templates) with their VIFs", async () => {
    const { sim, backend } = await setup();
    const vm = seedGuest(sim, "guest-a", ["52:54:00:aa:00:01", "52:54:00:aa:00:02"]);
    await until(() => backend.listVms().then((vms) => vms.length === 1), "the VM in the cache");
    const facts = await backend.facts();
    expect(facts).toEqual({ kind: "xenserver", hostname: "xenhost", hypervisorVersion: "8.2.1", libraryVersion: "XAPI 2.21" });
    expect(backend.networkBackend()).toBe("bridge");
    await until(async () => (await backend.getVm(vm.uuid)).nics.length === 2, "both VIFs");
    const info = await backend.getVm(vm.uuid);
    expect(info).toMatchObject({ uuid: vm.uuid, name: "guest-a", state: "stopped", domainId: -1 });
    expect(info.nics.map((nic) => [nic.index, nic.mac, nic.device, nic.bridge])).toEqual([
      [0, "52:54:00:aa:00:01", undefined, "xenbr0"],
      [1, "52:54:00:aa:00:02", undefined, "xenbr0"],
    ]);
    await expect(backend.getVm("00000000-0000-0000-0000-000000000000")).rejects.toMatchObject({ code: "not_found", field: "uuid" });
    await expect(backend.getVm("not-a-uuid")).rejects.toMatchObject({ code: "invalid_argument", field: "uuid" });
  });

  it("keeps only the fields it reads of each cached record, and the Async.* tasks still settle", async () => {
    const { sim, backend } = await setup();
    const vm = seedGuest(sim, "guest-trim");
    await until(() => backend.listVms().then((vms) => vms.length === 1), "the VM in the cache");
    await backend.startVm(vm.uuid);
    expect((await backend.getVm(vm.uuid)).state).toBe("running");
    const cache = backend.connection.client.objects.all;
    const byType = new Map<string, Set<string>>();
    for (const record of Object.values(cache)) {
      const keys = byType.get(record.$type) ?? new Set<string>();
      for (const key of Object.keys(record)) keys.add(key);
      byType.set(record.$type, keys);
    }
    expect([...(byType.get("VM") ?? [])].sort()).toEqual([...CACHED_FIELDS.VM].sort());
    for (const [type, keys] of byType) {
      const allowed = new Set((CACHED_FIELDS as Record<string, readonly string[] | undefined>)[type] ?? []);
      expect(
        [...keys].filter((key) => !allowed.has(key)),
        type,
      ).toEqual([]);
    }
    // The simulator's records carry every field of the data model; the cache did not keep them.
    expect(Object.keys(sim.db.get("VM", vm.ref)).length).toBeGreaterThan(CACHED_FIELDS.VM.length * 3);
  });

  it("refuses an Open vSwitch host with a clear error", async () => {
    const running = await startXapiSimulator({ networkBackend: "openvswitch" });
    sim = running;
    const ovs = new XenServerHypervisor({ url: running.url, auth: { user: "root", password: "xenroot" } });
    const error = await ovs.connect().then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(isV6Error(error)).toBe(true);
    expect(error).toMatchObject({ code: "not_implemented", field: "host.software_version.network_backend" });
    expect(String((error as Error).message)).toMatch(/Open vSwitch.*ebtables\/ip6tables.*refuses/);
    expect(running.callCount(/^(network|VLAN|VIF)\.create$|create_VLAN/)).toBe(0);
  });

  it("refuses a VLAN tag of 4095 and a /48 before any XAPI call", async () => {
    const { sim, backend } = await setup();
    sim.clearCalls();
    await expect(backend.ensureSharedNetwork({ prefix: "2001:db8:1::/48", vlan: 100 })).rejects.toMatchObject({
      code: "invalid_argument",
      field: "prefix",
    });
    await expect(backend.ensureSharedNetwork({ prefix: "2001:db8:1:1::/64", vlan: 4095 })).rejects.toMatchObject({
      code: "invalid_argument",
      field: "vlan",
    });
    await expect(backend.ensureSharedNetwork({ prefix: "2001:db8:1:1::/64", vlan: 10, uplink: "eth0;rm" })).rejects.toMatchObject({
      field: "uplink",
    });
    const vm = seedGuest(sim, "g", []);
    await until(() => backend.listVms().then((vms) => vms.length === 1), "the VM");
    sim.clearCalls();
    await expect(backend.attachNic(vm.uuid, { bridge: "xenbr0", mac: "01:00:5e:00:00:01" as Mac })).rejects.toMatchObject({ field: "mac" });
    await expect(backend.attachNic(vm.uuid, { bridge: "br;x", mac: "52:54:00:00:00:09" as Mac })).rejects.toMatchObject({
      field: "bridge",
    });
    // Only the event loop may have talked to XAPI meanwhile; no other call was made.
    expect(sim.calls.filter((call) => call.method !== "event.from")).toEqual([]);
  });

  it("ensures a tagged shared network once: network.create with our marks and a VLAN on the uplink PIF", async () => {
    const { sim, backend } = await setup();
    const first = await backend.ensureSharedNetwork({ prefix: "2001:db8:5:1::/64", vlan: 105 });
    expect(first).toMatchObject({ created: true, vlan: 105, prefix: { cidr: "2001:db8:5:1::/64" } });
    expect(first.bridge).toMatch(/^xapi\d+$/);
    const network = sim.db.get("network", first.ref);
    expect(network.other_config).toEqual({ "v6agent:prefixes": "2001:db8:5:1::/64", "v6agent:managed": "true" });
    const vlans = sim.db.all("VLAN").map(([, vlan]) => vlan);
    expect(vlans).toHaveLength(1);
    expect(vlans[0]).toMatchObject({ tag: 105, tagged_PIF: sim.host?.pif });
    expect(sim.db.get("PIF", vlans[0]?.untagged_PIF)).toMatchObject({ device: "eth0", VLAN: 105, network: first.ref });

    sim.clearCalls();
    const again = await backend.ensureSharedNetwork({ prefix: "2001:db8:5:1::/64", vlan: 105 });
    expect(again).toMatchObject({ ref: first.ref, created: false });
    expect(sim.callCount(/create/)).toBe(0);
    await expect(backend.ensureSharedNetwork({ prefix: "2001:db8:5:1::/64", vlan: 106 })).rejects.toMatchObject({
      code: "conflict",
      field: "vlan",
    });

    // Untagged: the uplink's own network carries the /64.
    const untagged = await backend.ensureSharedNetwork({ prefix: "2001:db8:5:2::/64" });
    expect(untagged).toMatchObject({ bridge: "xenbr0", created: false, vlan: undefined });
    expect(sim.db.get("network", sim.host?.network).other_config).toEqual({ "v6agent:prefixes": "2001:db8:5:2::/64" });
  });

  it("plugs a NIC into a running VM and reports vif<domid>.<device>; follows the domid through a reboot", async () => {
    const { sim, backend, events } = await setup();
    const vm = seedGuest(sim, "guest-b");
    await until(() => backend.listVms().then((vms) => vms.length === 1), "the VM");
    await backend.startVm(vm.uuid);
    const domid = sim.db.get("VM", vm.ref).domid as number;
    await until(() => events.some((event) => event.type === "vm-started" && event.uuid === vm.uuid), "vm-started");
    await until(() => events.some((event) => event.type === "nic-added" && event.device === `vif${domid}.0`), "the first NIC attached");

    const nic = await backend.attachNic(vm.uuid, { bridge: "xenbr0", mac: "52:54:00:aa:00:07" as Mac });
    expect(nic).toMatchObject({
      device: `vif${domid}.1`,
      emulatedDevice: `tap${domid}.1`,
      index: 1,
      bridge: "xenbr0",
      mac: "52:54:00:aa:00:07",
    });
    const vif = sim.db.find("VIF", (record) => record.MAC === "52:54:00:aa:00:07");
    expect(vif?.[1]).toMatchObject({ currently_attached: true, device: "1", other_config: { "v6agent:managed": "true" } });
    await until(
      () => events.some((event) => event.type === "nic-added" && event.device === `vif${domid}.1` && event.mac === "52:54:00:aa:00:07"),
      "nic-added",
    );

    await sim.simulator.call("VM.hard_reboot", [sim.db.all("session")[0]?.[0], vm.ref]);
    const changed = await until(() => events.find((event) => event.type === "domid-changed" && event.uuid === vm.uuid), "domid-changed");
    const newDomid = sim.db.get("VM", vm.ref).domid as number;
    expect(newDomid).not.toBe(domid);
    expect(changed).toEqual({ type: "domid-changed", uuid: vm.uuid, domainId: newDomid });
    await until(async () => (await backend.getVm(vm.uuid)).domainId === newDomid, "the new domid in the cache");
    expect((await backend.getVm(vm.uuid)).nics.map((n) => n.device)).toEqual([`vif${newDomid}.0`, `vif${newDomid}.1`]);

    await backend.detachNic(vm.uuid, "52:54:00:aa:00:07" as Mac);
    expect(sim.db.find("VIF", (record) => record.MAC === "52:54:00:aa:00:07")).toBeUndefined();
    await until(() => events.some((event) => event.type === "nic-removed" && event.mac === "52:54:00:aa:00:07"), "nic-removed");

    await backend.stopVm(vm.uuid, { force: true });
    await until(() => events.some((event) => event.type === "vm-stopped" && event.uuid === vm.uuid), "vm-stopped");
    expect(sim.db.get("VM", vm.ref)).toMatchObject({ power_state: "Halted", domid: -1 });
    expect(sim.callCount("Async.VM.start")).toBe(1);
  });

  it("survives a XAPI session expiry in the middle of an operation: logs in again and retries once", async () => {
    const { sim, backend, events } = await setup();
    const vm = seedGuest(sim, "guest-c", []);
    await until(() => backend.listVms().then((vms) => vms.length === 1), "the VM");
    const logins = sim.callCount("session.login_with_password");
    // The session dies at VIF.create twice: the client's own re-login hits the second expiry and
    // gives up (it disconnects); the backend logs in again with backoff and retries once.
    sim.addFault({ kind: "expire-session", method: "VIF.create", times: 2 });
    const nic = await backend.attachNic(vm.uuid, { bridge: "xenbr0", mac: "52:54:00:aa:00:0c" as Mac });
    expect(nic.index).toBe(0);
    expect(sim.db.all("VIF").filter(([, vif]) => vif.MAC === "52:54:00:aa:00:0c")).toHaveLength(1);
    expect(sim.callCount("session.login_with_password")).toBe(logins + 2);
    expect(sim.callCount("VIF.create")).toBe(3);
    expect(events.map((event) => event.type)).toEqual(expect.arrayContaining(["connection-lost", "connection-restored"]));
    // The event loop kept working on the new session.
    const late = seedGuest(sim, "guest-late", []);
    await until(async () => (await backend.listVms()).some((info) => info.uuid === late.uuid), "events after the re-login");
  });

  it("reconnects with backoff while XAPI refuses logins, then runs the operation", async () => {
    const { sim, backend, events } = await setup();
    const vm = seedGuest(sim, "guest-d", []);
    await until(async () => (await backend.listVms()).some((info) => info.uuid === vm.uuid), "the VM");
    // xapi restarted: every session is gone and the next three logins are cut off.
    sim.simulator.expireSessions();
    sim.addFault({ kind: "reset", method: "session.login_with_password", times: 3 });
    const before = sim.callCount("session.login_with_password");
    await backend.startVm(vm.uuid);
    expect(sim.db.get("VM", vm.ref).power_state).toBe("Running");
    expect(sim.callCount("session.login_with_password") - before).toBe(4);
    expect(sim.callCount("Async.VM.start")).toBe(2);
    expect(events.filter((event) => event.type.startsWith("connection-")).map((event) => event.type)).toEqual([
      "connection-lost",
      "connection-restored",
    ]);
    await until(() => events.some((event) => event.type === "vm-started" && event.uuid === vm.uuid), "vm-started after the reconnect");
  });

  it("logs in with an existing session reference, and says plainly when that session expires", async () => {
    const running = await startXapiSimulator();
    sim = running;
    const session = (await running.simulator.call("session.login_with_password", ["root", "xenroot"])) as string;
    const bySession = new XenServerHypervisor({ url: running.url, auth: { sessionId: session } });
    backend = bySession;
    await bySession.connect();
    expect((await bySession.facts()).hostname).toBe("xenhost");
    // The session came from elsewhere (made in-process here): nothing logged in over the wire.
    expect(running.callCount("session.login_with_password")).toBe(0);
    const vm = seedGuest(running, "guest-s", []);
    await until(async () => (await bySession.listVms()).some((info) => info.uuid === vm.uuid), "the VM");
    running.simulator.expireSessions();
    await expect(bySession.startVm(vm.uuid)).rejects.toMatchObject({ code: "unavailable", field: "auth" });
    expect(running.callCount("session.login_with_password")).toBe(0);
  });

  it("reads through to XAPI when the event cache has not caught up yet", async () => {
    const { sim, backend } = await setup();
    const shared = await backend.ensureSharedNetwork({ prefix: "2001:db8:6:1::/64", vlan: 6 });
    // Hold back the backend's next event.from answers, so the VM below cannot reach its cache:
    // wake the long poll that is in flight now, and wait until its successor is being delayed.
    sim.addFault({ kind: "delay", method: "event.from", ms: 10_000, times: 3 });
    const polls = sim.callCount("event.from");
    seedGuest(sim, "wake-the-poll", []);
    await until(() => sim.callCount("event.from") > polls, "the next event.from");
    sim.clearCalls();
    const vm = seedGuest(sim, "fresh", ["52:54:00:aa:00:0f"]);
    const info = await backend.getVm(vm.uuid);
    expect(info).toMatchObject({ uuid: vm.uuid, name: "fresh", state: "stopped" });
    expect(info.nics.map((nic) => [nic.mac, nic.bridge])).toEqual([["52:54:00:aa:00:0f", "xenbr0"]]);
    const nic = await backend.attachNic(vm.uuid, { bridge: shared.bridge, mac: "52:54:00:aa:00:10" as Mac });
    expect(nic).toMatchObject({ index: 1, bridge: shared.bridge, device: undefined });
    expect(sim.callCount("VM.get_by_uuid")).toBeGreaterThan(0);
  });

  it("follows a live migration: a new domid without a stop, so the devices are renamed in place", async () => {
    const { sim, backend, events } = await setup();
    const vm = seedGuest(sim, "migrant", ["52:54:00:aa:00:21", "52:54:00:aa:00:22"]);
    await backend.startVm(vm.uuid);
    const before = sim.db.get("VM", vm.ref).domid as number;
    await until(() => events.some((event) => event.type === "nic-added" && event.device === `vif${before}.1`), "the NICs attached");
    events.length = 0;
    await backend.connection.callAsync("VM.pool_migrate", vm.ref, sim.host?.ref, { live: "true" });
    const after = sim.db.get("VM", vm.ref).domid as number;
    expect(after).not.toBe(before);
    await until(() => events.some((event) => event.type === "domid-changed" && event.domainId === after), "domid-changed");
    expect(events.filter((event) => event.type === "vm-stopped" || event.type === "vm-started")).toEqual([]);
    expect((await backend.getVm(vm.uuid)).nics.map((nic) => nic.device)).toEqual([`vif${after}.0`, `vif${after}.1`]);
    // A later unplug names the renamed device.
    await backend.detachNic(vm.uuid, "52:54:00:aa:00:22" as Mac);
    await until(
      () => events.some((event) => event.type === "nic-removed" && event.device === `vif${after}.1`),
      "nic-removed with the new name",
    );
  });

  it("accepts a self-signed XAPI certificate only when configured to", async () => {
    const running = await startXapiSimulator({ https: true });
    sim = running;
    const strict = new XenServerHypervisor({ url: running.url, auth: { user: "root", password: "xenroot" } });
    await expect(strict.connect()).rejects.toMatchObject({ code: "unavailable", message: expect.stringMatching(/certificate/i) });
    await strict.close();
    backend = new XenServerHypervisor({ url: running.url, auth: { user: "root", password: "xenroot" }, allowSelfSigned: true });
    await backend.connect();
    expect((await backend.facts()).kind).toBe("xenserver");
  });
});

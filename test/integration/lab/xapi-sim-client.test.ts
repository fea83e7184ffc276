import { afterEach, describe, expect, it } from "vitest";
import { createClient, type Xapi, type XapiObject } from "xen-api";
import { type RunningXapiSimulator, startXapiSimulator } from "../../../src/lab/xapi-sim/index.js";
import { until } from "../../support/wait.js";

/**
 * The simulator against the real `xen-api` client (JSON-RPC transport): everything the client
 * does on connect (login, pool.get_all_records, system.listMethods, event.inject, initial
 * get_all_records of every class, event.from loop) must work unmodified.
 */
let sim: RunningXapiSimulator | undefined;
let client: Xapi | undefined;

afterEach(async () => {
  await client?.disconnect();
  client = undefined;
  await sim?.close();
  sim = undefined;
});

function connect(running: RunningXapiSimulator, extra: Record<string, unknown> = {}): Xapi {
  client = createClient({
    url: running.url,
    auth: { user: "root", password: "xenroot" },
    transport: "json-rpc",
    debounce: 10,
    eventPollDelay: 100,
    ...extra,
  });
  return client;
}

describe("XAPI simulator with the real xen-api client", () => {
  it("logs in, serves get_all_records with the data model's defaults and fills the object cache", async () => {
    sim = await startXapiSimulator();
    const xapi = connect(sim);
    await xapi.connect();
    await xapi.objectsFetched;
    expect(xapi.sessionId).toMatch(/^OpaqueRef:[0-9a-f-]{36}$/);

    const networks = await xapi.getAllRecords<XapiObject>("network");
    const management = networks.find((network) => network.bridge === "xenbr0");
    expect(management).toBeDefined();
    // Defaults from the data model: MTU 1500, managed true, default_locking_mode unlocked.
    expect(management?.MTU).toBe(1500);
    expect(management?.managed).toBe(true);
    expect(management?.default_locking_mode).toBe("unlocked");

    const host = xapi.getObjectByUuid<XapiObject>(sim.host?.uuid as string);
    expect((host.software_version as Record<string, string>).network_backend).toBe("bridge");
    expect(host.license_server).toEqual({ address: "localhost", port: "27000" });
    expect(sim.callCount("session.login_with_password")).toBe(1);
    expect(sim.callCount("system.listMethods")).toBe(1);
  });

  it("delivers changes through event.from into the client's object cache, in order", async () => {
    sim = await startXapiSimulator();
    const xapi = connect(sim);
    await xapi.connect();
    await xapi.objectsFetched;
    const vm = sim.seed.vm({ nameLabel: "guest-1" });
    const seen = await until(() => xapi.getObjectByUuid<XapiObject | undefined>(vm.uuid, undefined), "the new VM in the cache");
    expect(seen.power_state).toBe("Halted");
    expect(seen.domid).toBe(-1);

    await xapi.call("VM.start", vm.ref, false, false);
    const running = await until(() => {
      const current = xapi.getObjectByUuid<XapiObject>(vm.uuid);
      return current.power_state === "Running" ? current : undefined;
    }, "the VM running in the cache");
    expect(running.domid).toBeGreaterThan(0);
    await xapi.call("VM.hard_reboot", vm.ref);
    const rebooted = await until(() => {
      const current = xapi.getObjectByUuid<XapiObject>(vm.uuid);
      // A reboot passes through halted (domid -1) before the new domain runs.
      return current.domid !== running.domid && current.power_state === "Running" ? current : undefined;
    }, "the new domid in the cache");
    expect(rebooted.domid).toBeGreaterThan(running.domid as number);
    expect(rebooted.power_state).toBe("Running");
  });

  it("hands out ordered tokens from event.from and blocks until an event or the timeout", async () => {
    sim = await startXapiSimulator();
    const xapi = connect(sim, { watchEvents: false });
    await xapi.connect();
    const first = await xapi.call<{ token: string; events: unknown[] }>("event.from", ["vm"], "", 0.1);
    expect(first.events.length).toBeGreaterThan(0);
    const empty = await xapi.call<{ token: string; events: unknown[] }>("event.from", ["vm"], first.token, 0.2);
    expect(empty.events).toEqual([]);
    expect(empty.token).toBe(first.token);

    const pending = xapi.call<{ token: string; events: { class: string; operation: string; ref: string; snapshot: XapiObject }[] }>(
      "event.from",
      ["vm"],
      first.token,
      30,
    );
    const vm = sim.seed.vm({ nameLabel: "late" });
    const batch = await pending;
    expect(batch.events).toHaveLength(1);
    expect(batch.events[0]).toMatchObject({ class: "vm", operation: "add", ref: vm.ref });
    expect(batch.events[0]?.snapshot.name_label).toBe("late");
    expect(batch.token > first.token).toBe(true);
  });

  it("answers EVENTS_LOST for a token older than its event log, and the client's watcher recovers", async () => {
    sim = await startXapiSimulator({ maxEvents: 5 });
    const xapi = connect(sim);
    await xapi.connect();
    await xapi.objectsFetched;
    const { token } = await xapi.call<{ token: string }>("event.from", ["vm"], "", 0);
    for (let index = 0; index < 10; index++) sim.seed.vm({ nameLabel: `burst-${index}` });
    await expect(xapi.call("event.from", ["vm"], token, 0)).rejects.toMatchObject({ code: "EVENTS_LOST" });
    const last = sim.seed.vm({ nameLabel: "after the burst" });
    await until(() => xapi.getObjectByUuid<XapiObject | undefined>(last.uuid, undefined), "the cache after the burst");
    // The watcher lost its place too, started over (event.inject, full get_all_records) and caught up.
    expect(sim.callCount("event.inject")).toBeGreaterThanOrEqual(2);
    expect(xapi.getObjectByUuid<XapiObject>(last.uuid).name_label).toBe("after the burst");
  });

  it("runs Async.* tasks whose result is XML-RPC encoded, decoded by the client", async () => {
    sim = await startXapiSimulator();
    const xapi = connect(sim);
    await xapi.connect();
    await xapi.objectsFetched;
    const ref = await xapi.callAsync<string>("network.create", {
      name_label: "async net",
      name_description: "",
      MTU: 1500,
      other_config: { "v6agent:test": "1" },
    });
    expect(ref).toMatch(/^OpaqueRef:/);
    const created = sim.db.get("network", ref);
    expect(created.bridge).toMatch(/^xapi\d+$/);
    // A failing task rejects with XAPI's error.
    await expect(xapi.callAsync("VM.start", sim.host?.ref, false, false)).rejects.toMatchObject({
      code: "HANDLE_INVALID",
      params: ["VM", sim.host?.ref],
    });
  });

  it("answers with XAPI's error names and parameters", async () => {
    sim = await startXapiSimulator();
    const xapi = connect(sim, { watchEvents: false });
    await xapi.connect();
    const host = sim.host as NonNullable<RunningXapiSimulator["host"]>;
    await expect(xapi.call("VIF.get_record", "OpaqueRef:nope")).rejects.toMatchObject({
      code: "HANDLE_INVALID",
      params: ["VIF", "OpaqueRef:nope"],
    });
    await expect(xapi.call("VLAN.create", host.pif, 4095, host.network)).rejects.toMatchObject({
      code: "VLAN_TAG_INVALID",
      params: ["4095"],
    });
    const network = await xapi.call<string>("network.create", { name_label: "n", name_description: "", MTU: 1500, other_config: {} });
    await xapi.call("VLAN.create", host.pif, 42, network);
    await expect(xapi.call("VLAN.create", host.pif, 42, network)).rejects.toMatchObject({ code: "PIF_VLAN_EXISTS", params: ["eth0"] });
    const vm = sim.seed.vm({ nameLabel: "g" });
    const vif = {
      device: "0",
      network,
      VM: vm.ref,
      MAC: "52:54:00:00:00:01",
      MTU: 1500,
      other_config: {},
      qos_algorithm_type: "",
      qos_algorithm_params: {},
    };
    await xapi.call("VIF.create", vif);
    await expect(xapi.call("VIF.create", { ...vif, MAC: "52:54:00:00:00:02" })).rejects.toMatchObject({
      code: "DEVICE_ALREADY_EXISTS",
      params: ["0"],
    });
    await expect(xapi.call("VIF.create", { ...vif, device: "1", MAC: "not-a-mac" })).rejects.toMatchObject({ code: "MAC_INVALID" });
    await expect(xapi.call("VM.no_such_message", vm.ref)).rejects.toMatchObject({ code: "MESSAGE_METHOD_UNKNOWN" });
    await expect(xapi.call("VM.start", vm.ref)).rejects.toMatchObject({ code: "MESSAGE_PARAMETER_COUNT_MISMATCH" });
    await expect(xapi.call("pool.add_to_other_config", (await xapi.call<string[]>("pool.get_all"))[0], "k", "v")).resolves.toBe("");
  });

  it("speaks JSON-RPC v1 and v2 on the wire exactly as XAPI documents them", async () => {
    sim = await startXapiSimulator();
    const post = async (body: object) => {
      const response = await fetch(`${sim?.url}/jsonrpc`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { type: response.headers.get("content-type"), body: (await response.json()) as Record<string, unknown> };
    };
    const v2 = await post({ jsonrpc: "2.0", method: "session.login_with_password", params: ["root", "wrong"], id: 3 });
    expect(v2.type).toBe("application/json");
    expect(v2.body).toEqual({
      jsonrpc: "2.0",
      error: { code: 1, message: "SESSION_AUTHENTICATION_FAILED", data: ["root", "Authentication failure"] },
      id: 3,
    });
    const v1 = await post({ method: "VM.get_all", params: ["OpaqueRef:dead"], id: "xyz" });
    expect(v1.body).toEqual({ result: null, error: ["SESSION_INVALID", "OpaqueRef:dead"], id: "xyz" });
  });

  it("serves HTTPS with a self-signed certificate only to a client that allows it", async () => {
    sim = await startXapiSimulator({ https: true });
    expect(sim.url).toMatch(/^https:/);
    const strict = createClient({ url: sim.url, auth: { user: "root", password: "xenroot" }, transport: "json-rpc", watchEvents: false });
    await expect(strict.connect()).rejects.toThrow(/certificate/i);
    const relaxed = connect(sim, { allowUnauthorized: true, watchEvents: false });
    await relaxed.connect();
    expect(relaxed.status).toBe("connected");
  });

  it("injects faults: an expired session (the client logs in again), a reset connection, a slow answer", async () => {
    sim = await startXapiSimulator();
    const xapi = connect(sim, { watchEvents: false });
    await xapi.connect();
    const before = xapi.sessionId;
    sim.addFault({ kind: "expire-session", method: "network.get_all" });
    await expect(xapi.call("network.get_all")).resolves.toHaveLength(1);
    expect(xapi.sessionId).not.toBe(before);
    expect(sim.callCount("session.login_with_password")).toBe(2);

    sim.addFault({ kind: "reset", method: "network.create" });
    await expect(xapi.call("network.create", { name_label: "r", name_description: "", MTU: 1500, other_config: {} })).rejects.toThrow();
    expect(sim.db.all("network")).toHaveLength(1);

    sim.addFault({ kind: "delay", method: "host.get_all", ms: 300 });
    const started = Date.now();
    await xapi.call("host.get_all");
    // The fault held the answer back (a sanity check of the injection, not a timing benchmark).
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it("speaks XML-RPC too: the client's xml-rpc transport logs in, reads records, follows events and decodes Failure", async () => {
    sim = await startXapiSimulator();
    const xapi = connect(sim, { transport: "xml-rpc" });
    await xapi.connect();
    await xapi.objectsFetched;
    const vm = sim.seed.vm({ nameLabel: "xml guest" });
    const cached = await until(() => xapi.getObjectByUuid<XapiObject | undefined>(vm.uuid, undefined), "the VM over XML-RPC events");
    expect(cached.name_label).toBe("xml guest");
    // XAPI encodes ints as strings over XML-RPC.
    expect(cached.domid).toBe("-1");
    await expect(xapi.call("VM.get_record", "OpaqueRef:gone")).rejects.toMatchObject({
      code: "HANDLE_INVALID",
      params: ["VM", "OpaqueRef:gone"],
    });
    const network = await xapi.callAsync<string>("network.create", { name_label: "x", name_description: "", MTU: 1500, other_config: {} });
    expect(sim.db.get("network", network).name_label).toBe("x");
    expect(sim.callCount("Async.network.create")).toBe(1);
  });

  it("answers a host without JSON-RPC in XML, and the client's auto transport falls back to XML-RPC", async () => {
    sim = await startXapiSimulator({ jsonRpc: false });
    const raw = await fetch(`${sim.url}/jsonrpc`, {
      method: "POST",
      body: JSON.stringify({ jsonrpc: "2.0", method: "system.listMethods", params: [], id: 1 }),
    });
    expect(raw.headers.get("content-type")).not.toBe("application/json");
    await raw.body?.cancel();
    const xapi = connect(sim, { transport: "auto", watchEvents: false });
    await xapi.connect();
    expect(xapi.status).toBe("connected");
    const failure = await fetch(`${sim.url}/`, {
      method: "POST",
      headers: { "content-type": "text/xml" },
      body: "<?xml version='1.0'?><methodCall><methodName>VM.get_all</methodName><params><param><value><string>OpaqueRef:dead</string></value></param></params></methodCall>",
    });
    expect(failure.headers.get("content-type")).toBe("text/xml");
    expect(await failure.text()).toContain(
      "<struct><member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name><value><array><data><value>SESSION_INVALID</value><value>OpaqueRef:dead</value></data></array></value></member></struct>",
    );
  });
});

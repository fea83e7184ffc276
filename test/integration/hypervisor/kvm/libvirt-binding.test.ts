import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { V6Error } from "../../../../src/errors.js";
import { run } from "../../../../src/exec.js";
import { DeviceFlags, LibvirtConnection, LibvirtError, type NativeEvent, VirErrorCode } from "../../../../src/hypervisor/kvm/libvirt.js";
import { buildXml } from "../../../../src/hypervisor/kvm/xml.js";

/**
 * The addon against libvirt's in-process `test:///default` driver: no daemon, a fresh default
 * host (one running domain named "test") for every connection.
 */
const addonPath = fileURLToPath(new URL("../../../../native/build/Release/v6agent_libvirt.node", import.meta.url));
const TEST_DOMAIN_UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f";

function testDomainXml(name: string, uuid: string): string {
  return buildXml({
    domain: {
      "@_type": "test",
      name,
      uuid,
      memory: { "@_unit": "MiB", "#text": "64" },
      os: { type: "hvm" },
    },
  });
}

describe("libvirt addon on test:///default", () => {
  let connection: LibvirtConnection;
  let events: NativeEvent[];

  beforeEach(async () => {
    events = [];
    connection = await LibvirtConnection.open("test:///default", (event) => events.push(event));
  });

  afterEach(async () => {
    await connection.close();
  });

  it("reads host facts and lists the default domain", async () => {
    const host = await connection.host();
    expect(host.type).toBe("TEST");
    expect(host.uri).toBe("test:///default");
    expect(host.libraryVersion).toBeGreaterThanOrEqual(9_000_000);
    expect(host.hostname.length).toBeGreaterThan(0);
    const domains = await connection.listDomains();
    expect(domains).toEqual([{ name: "test", uuid: TEST_DOMAIN_UUID, id: 1, state: 1, reason: expect.any(Number) }]);
    const xml = await connection.domainXml(TEST_DOMAIN_UUID);
    expect(xml).toContain("<name>test</name>");
  });

  it("defines, starts, stops and undefines a domain, delivering each lifecycle event", async () => {
    const uuid = "11111111-2222-4333-8444-555555555555";
    const defined = await connection.defineDomain(testDomainXml("binding-1", uuid));
    expect(defined).toMatchObject({ name: "binding-1", uuid, id: -1, state: 5 });
    await connection.createDomain(uuid);
    expect((await connection.lookupDomain(uuid)).state).toBe(1);
    await connection.destroyDomain(uuid);
    await connection.undefineDomain(uuid);
    await expect.poll(() => events.length).toBeGreaterThanOrEqual(4);
    // virDomainEventType: 0 defined, 2 started, 5 stopped, 1 undefined.
    expect(events.map((event) => (event.kind === "lifecycle" ? [event.uuid, event.event] : event.kind))).toEqual([
      [uuid, 0],
      [uuid, 2],
      [uuid, 5],
      [uuid, 1],
    ]);
    expect((await connection.listDomains()).map((domain) => domain.uuid)).toEqual([TEST_DOMAIN_UUID]);
  });

  it("turns libvirt errors into typed errors with libvirt's code, domain and message", async () => {
    const unknown = "00000000-0000-4000-8000-000000000000";
    const error = await connection.lookupDomain(unknown).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(LibvirtError);
    expect(error).toMatchObject({ code: "not_found", libvirtCode: VirErrorCode.noDomain, libvirtDomain: expect.any(Number) });
    expect((error as Error).message).toMatch(/domain 00000000-0000-4000-8000-000000000000: .*Domain not found/);

    await expect(connection.defineDomain("<domain><name>broken")).rejects.toMatchObject({ code: "invalid_argument" });
    // The test driver has no device attach: a clear not_implemented, not a crash.
    await expect(
      connection.attachDevice(TEST_DOMAIN_UUID, "<interface type='bridge'><source bridge='br0'/></interface>", DeviceFlags.live),
    ).rejects.toMatchObject({ code: "not_implemented", libvirtCode: VirErrorCode.noSupport });
    await expect(LibvirtConnection.open("nosuchdriver:///x")).rejects.toBeInstanceOf(LibvirtError);
  });

  it("rejects every call once closed, and close is idempotent", async () => {
    const other = await LibvirtConnection.open("test:///default");
    expect(other.isAlive()).toBe(true);
    await other.close();
    await other.close();
    expect(other.isAlive()).toBe(false);
    await expect(other.listDomains()).rejects.toThrow(/closed/);
  });

  it("keeps many calls in flight at once", async () => {
    const results = await Promise.all(Array.from({ length: 200 }, () => connection.lookupDomain(TEST_DOMAIN_UUID)));
    expect(new Set(results.map((result) => result.uuid))).toEqual(new Set([TEST_DOMAIN_UUID]));
  });
});

describe("libvirt addon threading", () => {
  let directory: string;
  beforeEach(() => {
    directory = mkdtempSync(join(tmpdir(), "v6-libvirt-"));
  });
  afterEach(() => rmSync(directory, { recursive: true, force: true }));

  it("runs a blocking open off the JavaScript thread: timers tick while libvirt waits", async () => {
    // A fake daemon that accepts and never answers. libvirt's open blocks waiting for its reply;
    // only a timer on this (JavaScript) thread ends it, by closing the socket after 5 ticks.
    // Were the open on this thread, no tick could run and the test would hang.
    const socketPath = join(directory, "sock");
    const sockets: Socket[] = [];
    const server = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    let ticks = 0;
    let ticksWhenSettled = -1;
    const timer = setInterval(() => {
      ticks++;
      if (ticks === 5) for (const socket of sockets) socket.destroy();
    }, 20);
    try {
      const error = await LibvirtConnection.open(`test+unix:///default?socket=${socketPath}`).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      ticksWhenSettled = ticks;
      expect(error).toBeInstanceOf(V6Error);
      expect(sockets.length).toBe(1);
      expect(ticksWhenSettled).toBeGreaterThanOrEqual(5);
    } finally {
      clearInterval(timer);
      server.close();
    }
  });

  it("does not leak handles: rounds of 10,000 calls and 500 connections leave RSS flat", async () => {
    // A child with --expose-gc so a collection precedes every reading; warm-up round first.
    const script = `
      const addon = require(${JSON.stringify(addonPath)});
      const uuid = ${JSON.stringify(TEST_DOMAIN_UUID)};
      (async () => {
        const connection = await addon.open("test:///default", () => {});
        const rss = [];
        for (let round = 0; round < 6; round++) {
          for (let i = 0; i < 10000; i += 4) {
            await Promise.all([
              connection.listDomains(),
              connection.lookupDomain(uuid),
              connection.domainXml(uuid),
              connection.lookupDomain("00000000-0000-4000-8000-000000000000").catch(() => undefined),
            ]);
          }
          for (let i = 0; i < 500; i++) {
            const other = await addon.open("test:///default", () => {});
            await other.close();
          }
          globalThis.gc();
          rss.push(process.memoryUsage().rss);
        }
        await connection.close();
        // A released thread-safe function is finalized on a later turn of the event loop.
        for (let i = 0; i < 100 && addon.liveEventSinks() > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
        process.stdout.write(JSON.stringify({ rss, sinks: addon.liveEventSinks() }));
      })();`;
    const { stdout } = await run(process.execPath, ["--expose-gc", "-e", script], { timeoutMs: 120_000 });
    const { rss, sinks } = JSON.parse(stdout) as { rss: number[]; sinks: number };
    expect(rss).toHaveLength(6);
    // Every connection opened and closed (2,001 of them) freed its event sink.
    expect(sinks).toBe(0);
    // Rounds 1-2 warm up (allocator arenas, JIT); over the last three (30,000 calls, 1,500
    // connections) a leaked handle, XML string or sink per call would add megabytes.
    const growth = (rss[5] as number) - (rss[2] as number);
    expect(growth).toBeLessThan(1.5 * 1024 * 1024);
  });
});

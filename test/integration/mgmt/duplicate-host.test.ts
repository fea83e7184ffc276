import { afterEach, describe, expect, it } from "vitest";
import { ManagementServer } from "../../../src/mgmt/index.js";
import { eventually, makeAgent, nextConnected, RecordingHandler, vmUuid } from "../../support/channel-harness.js";
import { TcpProxy } from "../../support/tcp-proxy.js";

/**
 * Issue 17, finding 7: two daemons with one host id replaced each other forever (71 hellos in
 * 20 s). The server now refuses the newcomer while the connected agent answers a ping; the
 * newcomer backs off and retries, and takes over only once the first one is gone.
 */
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe("two agents with one host id", () => {
  it("the second is refused while the first is alive, the first is never replaced, and the second takes over when it is gone", async () => {
    const server = new ManagementServer({
      unauthenticatedLoopback: true,
      pingIntervalMs: 100,
      silenceTimeoutMs: 1000,
      duplicateProbeMs: 300,
    });
    const { url } = await server.start();
    cleanups.push(() => server.stop());
    let hellos = 0;
    server.on("agent", () => {
      hellos += 1;
    });
    const firstHandler = new RecordingHandler();
    const { channel: first } = makeAgent({ servers: [url] }, firstHandler);
    cleanups.push(() => first.stop({ graceMs: 100 }));
    const up = nextConnected(first);
    first.start();
    await up;
    let firstDropped = 0;
    first.on("disconnected", () => {
      firstDropped += 1;
    });

    const secondHandler = new RecordingHandler();
    const { channel: second } = makeAgent({ servers: [url], backoff: { initialMs: 50, maxMs: 200, factor: 2 } }, secondHandler);
    cleanups.push(() => second.stop({ graceMs: 100 }));
    const refusals: string[] = [];
    second.on("disconnected", (info) => refusals.push(info.reason));
    second.start();
    await eventually(() => refusals.length >= 4, "the second agent refused a few times");
    expect(
      refusals.every((reason) => /hostId "host-1" is already connected .* a second agent with the same hostId is refused/.test(reason)),
    ).toBe(true);
    expect(hellos).toBe(1);
    expect(firstDropped).toBe(0);
    await expect(server.call("host-1", "vm.stop", { uuid: vmUuid(1) }, { id: "to-first" })).resolves.toMatchObject({ state: "stopped" });
    expect([firstHandler.count("to-first"), secondHandler.count("to-first")]).toEqual([1, 0]);

    const takeover = nextConnected(second);
    await first.stop({ graceMs: 100 });
    await takeover;
    expect(hellos).toBe(2);
    await expect(server.call("host-1", "vm.stop", { uuid: vmUuid(2) }, { id: "to-second" })).resolves.toMatchObject({ state: "stopped" });
    expect(secondHandler.count("to-second")).toBe(1);
  });

  it("a connection that no longer answers is replaced by the host's new one at once", async () => {
    const server = new ManagementServer({
      unauthenticatedLoopback: true,
      pingIntervalMs: 60_000,
      silenceTimeoutMs: 120_000,
      duplicateProbeMs: 300,
    });
    const { port, url } = await server.start();
    cleanups.push(() => server.stop());
    const proxy = new TcpProxy(port);
    await proxy.start();
    cleanups.push(() => proxy.stop());
    const quiet = { pingIntervalMs: 60_000, silenceTimeoutMs: 120_000, connectTimeoutMs: 2000 };
    const { channel: stale } = makeAgent({ servers: [`ws://127.0.0.1:${proxy.port}/v6agent`], liveness: quiet });
    cleanups.push(() => stale.stop({ graceMs: 100 }));
    const up = nextConnected(stale);
    stale.start();
    await up;
    // The first connection stays open but carries nothing any more (a half-dead peer).
    proxy.stall();
    const { channel: fresh } = makeAgent({ servers: [url] });
    cleanups.push(() => fresh.stop({ graceMs: 100 }));
    const back = nextConnected(fresh);
    fresh.start();
    await back;
    await expect(server.call("host-1", "vm.list", {})).resolves.toEqual({ vms: [] });
  });
});

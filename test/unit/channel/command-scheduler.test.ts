import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CommandScheduler, EXCLUSIVE } from "../../../src/channel/index.js";

interface Gate {
  promise: Promise<void>;
  open: () => void;
}

function gate(): Gate {
  let open = () => {};
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe("CommandScheduler", () => {
  it("refuses beyond the queue bound", () => {
    const scheduler = new CommandScheduler(1, 2);
    const hold = gate();
    expect(scheduler.submit([], () => hold.promise)).toBe(true); // runs
    expect(scheduler.submit([], () => hold.promise)).toBe(true); // queued 1
    expect(scheduler.submit([], () => hold.promise)).toBe(true); // queued 2
    expect(scheduler.submit([], () => hold.promise)).toBe(false);
    expect([scheduler.runningCount, scheduler.queuedCount]).toEqual([1, 2]);
  });

  it("an exclusive command waits for everything before it and blocks everything after it", async () => {
    const scheduler = new CommandScheduler(4, 10);
    const log: string[] = [];
    const gates = new Map<string, Gate>();
    const job = (name: string, keys: string[]) =>
      scheduler.submit(keys, async () => {
        log.push(`start ${name}`);
        const g = gate();
        gates.set(name, g);
        await g.promise;
        log.push(`end ${name}`);
      });
    job("a", ["vm1"]);
    job("sync", [EXCLUSIVE]);
    job("b", ["vm2"]);
    await flush();
    expect(log).toEqual(["start a"]);
    gates.get("a")?.open();
    await flush();
    expect(log).toEqual(["start a", "end a", "start sync"]);
    gates.get("sync")?.open();
    await flush();
    expect(log.slice(-2)).toEqual(["end sync", "start b"]);
    gates.get("b")?.open();
    await scheduler.idle();
  });

  // Random workloads: the invariants hold whatever the arrival and completion order.
  it("never overlaps two commands on one key, keeps per-key arrival order and respects the concurrency limit", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.subarray(["vm1", "vm2", "vm3", "net1"]), fc.nat(3)), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 1, max: 4 }),
        async (jobs, concurrency) => {
          const scheduler = new CommandScheduler(concurrency, 100);
          const active = new Set<number>();
          const started: number[] = [];
          let maxActive = 0;
          jobs.forEach(([keys, delay], index) => {
            scheduler.submit(keys, async () => {
              for (const other of active) {
                const shared = (jobs[other]?.[0] ?? []).some((key) => keys.includes(key));
                expect(shared, `job ${index} overlaps job ${other}`).toBe(false);
              }
              active.add(index);
              started.push(index);
              maxActive = Math.max(maxActive, active.size);
              for (let i = 0; i < delay; i++) await flush();
              active.delete(index);
            });
          });
          await scheduler.idle();
          expect(started.length).toBe(jobs.length);
          expect(maxActive).toBeLessThanOrEqual(concurrency);
          for (const key of ["vm1", "vm2", "vm3", "net1"]) {
            const order = started.filter((index) => jobs[index]?.[0].includes(key));
            expect(order).toEqual([...order].sort((x, y) => x - y));
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

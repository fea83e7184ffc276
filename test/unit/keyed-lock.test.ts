import { describe, expect, it } from "vitest";
import { KeyedLock } from "../../src/keyed-lock.js";

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("KeyedLock", () => {
  it("serialises tasks of one key in arrival order, even when one fails", async () => {
    const lock = new KeyedLock();
    const log: string[] = [];
    let release!: () => void;
    const first = lock.run("vm-a", async () => {
      log.push("a1 start");
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      log.push("a1 end");
      throw new Error("a1 failed");
    });
    const second = lock.run("vm-a", async () => {
      log.push("a2");
      return 2;
    });
    await tick();
    expect(log).toEqual(["a1 start"]);
    release();
    await expect(first).rejects.toThrow("a1 failed");
    expect(await second).toBe(2);
    expect(log).toEqual(["a1 start", "a1 end", "a2"]);
  });

  it("runs different keys concurrently and forgets idle keys", async () => {
    const lock = new KeyedLock();
    const log: string[] = [];
    let release!: () => void;
    const blocked = lock.run("vm-a", () => new Promise<void>((resolve) => (release = resolve)));
    await lock.run("vm-b", async () => {
      log.push("b ran while a is blocked");
    });
    expect(log).toEqual(["b ran while a is blocked"]);
    await tick();
    expect(lock.busyKeys()).toEqual(["vm-a"]);
    release();
    await blocked;
    await tick();
    expect(lock.busyKeys()).toEqual([]);
  });

  it("runs an exclusive task after every earlier keyed task and before every later one", async () => {
    const lock = new KeyedLock();
    const log: string[] = [];
    let releaseA!: () => void;
    let releaseX!: () => void;
    const a = lock.run("vm-a", () => new Promise<void>((resolve) => (releaseA = resolve)).then(() => void log.push("a")));
    const x = lock.runExclusive(async () => {
      log.push("x start");
      await new Promise<void>((resolve) => (releaseX = resolve));
      log.push("x end");
    });
    const b = lock.run("vm-b", async () => void log.push("b"));
    await tick();
    expect(log).toEqual([]);
    releaseA();
    await a;
    await tick();
    expect(log).toEqual(["a", "x start"]);
    releaseX();
    await Promise.all([x, b]);
    expect(log).toEqual(["a", "x start", "x end", "b"]);
  });
});

import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const child = fileURLToPath(new URL("../../support/fixtures/v8-memory-child.ts", import.meta.url));

/** Runs one experiment of the fixture in a fresh process; its output line as numbers. */
async function experiment(mode: "tuned" | "default" | `without=${string}`, name: "young" | "opt" | "old"): Promise<number[]> {
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", child, mode, name]);
  return stdout.trim().split(" ").map(Number);
}

describe("tuneV8ForDaemon", () => {
  it("keeps V8's new space at its size through a burst that grows it without the call", async () => {
    const [[smallBefore, smallAfter], [defaultBefore, defaultAfter]] = await Promise.all([
      experiment("tuned", "young"),
      experiment("default", "young"),
    ]);
    expect(smallBefore).toBeGreaterThan(0);
    expect(smallAfter).toBe(smallBefore);
    // The control shows the burst is one V8 answers by growing the semi-spaces.
    expect(defaultAfter).toBeGreaterThan(defaultBefore as number);
  }, 30_000);

  it("keeps a hot function out of the optimising compilers, which optimise it without the call", async () => {
    const [[tuned], [control]] = await Promise.all([experiment("tuned", "opt"), experiment("default", "opt")]);
    expect(tuned).toBe(0);
    expect(control).toBe(1);
  }, 60_000);

  it("keeps the old generation's limit near its live size, where V8's own factor lets it grow ~4x", async () => {
    const [[tunedLive, tunedPeak], [controlLive, controlPeak]] = await Promise.all([
      experiment("tuned", "old"),
      experiment("without=--heap-growing-percent=20", "old"),
    ]);
    // ~20 MiB live in both; the garbage that follows raises the peak by far less with the setting.
    expect(tunedLive).toBeGreaterThan(16 * 2 ** 20);
    expect(controlLive).toBeGreaterThan(16 * 2 ** 20);
    expect((tunedPeak as number) - (tunedLive as number)).toBeLessThan(((controlPeak as number) - (controlLive as number)) / 2);
  }, 60_000);
});

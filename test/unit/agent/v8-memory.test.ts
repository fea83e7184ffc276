import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const burst = fileURLToPath(new URL("../../support/fixtures/young-generation-burst.ts", import.meta.url));
/** The new space's size in bytes before and after an allocation burst, in a fresh process. */
async function newSpaceAroundBurst(mode: "small" | "default"): Promise<[number, number]> {
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", burst, mode]);
  const [before, after] = stdout.trim().split(" ").map(Number);
  return [before as number, after as number];
}

describe("keepYoungGenerationSmall", () => {
  it("keeps V8's new space at its size through a burst that grows it without the call", async () => {
    const [[smallBefore, smallAfter], [defaultBefore, defaultAfter]] = await Promise.all([
      newSpaceAroundBurst("small"),
      newSpaceAroundBurst("default"),
    ]);
    expect(smallBefore).toBeGreaterThan(0);
    expect(smallAfter).toBe(smallBefore);
    // The control shows the burst is one V8 answers by growing the semi-spaces.
    expect(defaultAfter).toBeGreaterThan(defaultBefore);
  }, 30_000);
});

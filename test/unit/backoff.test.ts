import { describe, expect, it } from "vitest";
import { backoffDelay } from "../../src/channel/index.js";

describe("backoffDelay", () => {
  const options = { initialMs: 100, maxMs: 1000, factor: 2 };
  it("grows exponentially up to the cap", () => {
    expect([0, 1, 2, 3, 4, 10, 1000].map((attempt) => backoffDelay(attempt, options, () => 0.999999))).toEqual([
      100, 200, 400, 800, 1000, 1000, 1000,
    ]);
  });
  it("is jittered between a tenth of the step and the step", () => {
    expect(backoffDelay(3, options, () => 0)).toBe(80);
    expect(backoffDelay(3, options, () => 0.5)).toBe(440);
  });
});

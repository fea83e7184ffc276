import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { rcuExpeditedCheck } from "../../../src/diag/kernel.js";

const dir = mkdtempSync(join(tmpdir(), "rcu-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fileWith(value: string): string {
  const path = join(dir, `rcu-${value.trim() || "empty"}`);
  writeFileSync(path, value);
  return path;
}

describe("diag's kernel.rcu_expedited", () => {
  it("reports the default 0 as information with what it means for firewall changes", () => {
    const check = rcuExpeditedCheck(fileWith("0\n"));
    expect(check).toMatchObject({ name: "kernel.rcu_expedited", status: "ok" });
    expect(check.message).toMatch(/^rcu_expedited is 0: normal RCU grace periods/);
  });

  it("reports 1 as information too, and says v6agent did not set it", () => {
    const check = rcuExpeditedCheck(fileWith("1\n"));
    expect(check.status).toBe("ok");
    expect(check.message).toMatch(/^rcu_expedited is 1: expedited .* someone other than v6agent/);
  });

  it("says so when the kernel has no such file", () => {
    expect(rcuExpeditedCheck(join(dir, "missing")).message).toMatch(/not readable/);
  });
});

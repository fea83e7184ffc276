import { describe, expect, it } from "vitest";
import { assertLabCanRun, COMMON_TOOLS, missingTools } from "../../../src/lab/preflight.js";

describe("lab preflight", () => {
  it("refuses to run without root", () => {
    expect(() => assertLabCanRun([], false)).toThrow(/run it as root/);
  });

  it("names each missing tool and the package that provides it", () => {
    const tools = [
      { command: "v6agent-no-such-tool", debianPackage: "pkg-one" },
      { command: "v6agent-other-missing", debianPackage: "pkg-two" },
      { command: "sh", debianPackage: "dash" },
    ];
    expect(missingTools(tools).map((t) => t.command)).toEqual(["v6agent-no-such-tool", "v6agent-other-missing"]);
    expect(() => assertLabCanRun(tools, true)).toThrow(
      "the lab needs v6agent-no-such-tool, v6agent-other-missing, which are not installed: apt-get install pkg-one pkg-two (or run scripts/setup-host.sh)",
    );
  });

  it("passes when everything is there", () => {
    expect(() => assertLabCanRun([{ command: "sh", debianPackage: "dash" }], true)).not.toThrow();
    expect(COMMON_TOOLS.map((t) => t.command)).toContain("dhclient");
  });
});

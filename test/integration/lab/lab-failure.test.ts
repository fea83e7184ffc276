import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { skipReason } from "../../support/requirements.js";

const execFileAsync = promisify(execFile);
const CLI = join(process.cwd(), "dist/src/cli.js");

async function namespaces(): Promise<string[]> {
  const { stdout } = await execFileAsync("ip", ["netns", "list"]);
  return stdout
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => name.startsWith("v6lab"));
}

const skip = skipReason({ root: true, commands: ["ip", "dnsmasq", "dhclient", "nft"], files: [{ path: CLI, from: "npm run build" }] });

/**
 * A lab that fails half-way removes what it had made: here a namespace in its way (a guest's
 * name already taken) stops it after dom0's, the router's and the first guest's namespaces exist.
 */
describe.skipIf(skip !== undefined)("a failed lab cleans up after itself", () => {
  it("reports the failure, exits 1 and leaves no namespace, record or process", async () => {
    expect(existsSync("/run/v6agent-lab/lab.json")).toBe(false);
    await execFileAsync("ip", ["netns", "add", "v6lab-g2"]);
    let result: { code: number; stderr: string };
    try {
      result = await execFileAsync(process.execPath, [CLI, "lab", "--guest-kind", "netns"], { timeout: 120_000 }).then(
        ({ stderr }) => ({ code: 0, stderr }),
        (error: { code?: number; stderr?: string }) => ({ code: error.code ?? -1, stderr: error.stderr ?? "" }),
      );
    } finally {
      await execFileAsync("ip", ["netns", "del", "v6lab-g2"]).catch(() => undefined);
    }
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^v6agent: ip netns add v6lab-g2: exit code 1: Cannot create namespace file "\/run\/netns\/v6lab-g2": File exists/,
    );
    expect(await namespaces()).toEqual([]);
    expect(existsSync("/run/v6agent-lab/lab.json")).toBe(false);
    const { stdout } = await execFileAsync("pgrep", ["-af", "v6agent-lab"]).catch(() => ({ stdout: "" }));
    expect(stdout.split("\n").filter((line) => line.trim() !== "" && !line.includes("vitest"))).toEqual([]);
  });
});

import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { skipReason } from "../../support/requirements.js";

const execFileAsync = promisify(execFile);
const CLI = join(process.cwd(), "dist/src/cli.js");

async function cli(args: string[], options: { env?: NodeJS.ProcessEnv; user?: string } = {}) {
  const argv =
    options.user === undefined ? [process.execPath, CLI, ...args] : ["runuser", "-u", options.user, "--", process.execPath, CLI, ...args];
  try {
    const { stdout, stderr } = await execFileAsync(argv[0] as string, argv.slice(1), { env: options.env ?? process.env, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? "", stderr: failed.stderr ?? "" };
  }
}

const skip = skipReason({ root: true, commands: ["runuser", "ip", "pgrep"], files: [{ path: CLI, from: "npm run build" }] });

/** The built CLI's refusals happen before anything is made: no record, no namespace. */
describe.skipIf(skip !== undefined)("v6agent lab preflight (built CLI)", () => {
  it("refuses to run when not root, saying why, and leaves nothing behind", async () => {
    const result = await cli(["lab", "--guest-kind", "netns"], { user: "nobody" });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe("v6agent: the lab builds network namespaces, bridges and firewall rules: run it as root\n");
    expect(existsSync("/run/v6agent-lab/lab.json")).toBe(false);
  });

  it("names every missing tool and its Debian package", async () => {
    // In a private mount namespace dnsmasq and dhclient are made non-executable (/dev/null bound
    // over them): to the lab they are not installed, while the rest of the machine is unchanged.
    const hide = ["/usr/sbin/dnsmasq", "/usr/sbin/dhclient"];
    const args = [
      "--mount",
      "--",
      "sh",
      "-c",
      'for f in $HIDE; do mount --bind /dev/null "$f" || exit 97; done; exec "$@"',
      "sh",
      process.execPath,
      CLI,
      "lab",
      "--guest-kind",
      "netns",
    ];
    const result = await execFileAsync("unshare", args, { env: { ...process.env, HIDE: hide.join(" ") }, timeout: 60_000 }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code?: number; stdout?: string; stderr?: string }) => ({
        code: error.code ?? -1,
        stdout: error.stdout ?? "",
        stderr: error.stderr ?? "",
      }),
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      "v6agent: the lab needs dnsmasq, dhclient, which are not installed: apt-get install dnsmasq-base isc-dhcp-client (or run scripts/setup-host.sh)\n",
    );
    expect(existsSync("/run/v6agent-lab/lab.json")).toBe(false);
  });
});

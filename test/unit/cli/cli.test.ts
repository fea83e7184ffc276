import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { main } from "../../../src/cli/main.js";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    out.push(String(chunk));
    return true;
  });
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    err.push(String(chunk));
    return true;
  });
  return { out: () => out.join(""), err: () => err.join("") };
}

const argv = (...args: string[]) => ["node", "v6agent", ...args];

describe("v6agent CLI", () => {
  afterEach(() => vi.restoreAllMocks());

  it("addr --json prints DUID-LL, link-local and global", async () => {
    const io = capture();
    expect(await main(argv("addr", "52:54:00:12:34:56", "--prefix", "2001:db8:1:1::/64", "--json"))).toBe(0);
    expect(JSON.parse(io.out())).toEqual({
      mac: "52:54:00:12:34:56",
      duidLL: "00:03:00:01:52:54:00:12:34:56",
      linkLocal: "fe80::5054:ff:fe12:3456",
      network: "2001:db8:1:1::/64",
      global: "2001:db8:1:1:5054:ff:fe12:3456",
      dhcpHost: "dhcp-host=id:00:03:00:01:52:54:00:12:34:56,[2001:db8:1:1:5054:ff:fe12:3456]",
    });
  });

  it("addr without a prefix prints the link-local facts as text", async () => {
    const io = capture();
    expect(await main(argv("addr", "52-54-00-12-34-56"))).toBe(0);
    expect(io.out()).toContain("DUID-LL     00:03:00:01:52:54:00:12:34:56");
    expect(io.out()).toContain("link-local  fe80::5054:ff:fe12:3456");
    expect(io.out()).not.toContain("global");
  });

  it("refuses a /48 naming /48 and /64; with --json the error is JSON on stdout too", async () => {
    let io = capture();
    expect(await main(argv("addr", "52:54:00:12:34:56", "--prefix", "2001:db8::/48"))).toBe(1);
    expect(io.err()).toMatch(/\/48/);
    expect(io.err()).toMatch(/\/64/);
    expect(io.out()).toBe("");
    io = capture();
    expect(await main(argv("addr", "52:54:00:12:34:56", "--prefix", "2001:db8::/48", "--json"))).toBe(1);
    expect(JSON.parse(io.out())).toEqual({
      error: { code: "invalid_argument", message: expect.stringMatching(/\/48.*\/64|\/64.*\/48/), field: expect.any(String) },
    });
    expect(io.err()).toMatch(/^v6agent: /);
  });

  it("refuses a malformed MAC", async () => {
    const io = capture();
    expect(await main(argv("addr", "zz:54:00:12:34:56"))).toBe(1);
    expect(io.err()).toMatch(/^v6agent: mac: "zz:54:00:12:34:56" is not a MAC address/);
  });

  it("lab refuses bad flags before touching the host, naming the flag", async () => {
    let io = capture();
    expect(await main(argv("lab", "--guests", "1"))).toBe(1);
    expect(io.err()).toMatch(/^v6agent: --guests: "1": expected an integer from 2 to 8 \(at least one victim and one attacker\)/);
    io = capture();
    expect(await main(argv("lab", "--hypervisor", "kvm", "--guest-kind", "netns"))).toBe(1);
    expect(io.err()).toMatch(/^v6agent: --guest-kind: netns guests need a hypervisor that plugs a namespace into the guest bridge/);
  });

  it("--version prints the package version", async () => {
    const io = capture();
    expect(await main(argv("--version"))).toBe(0);
    expect(io.out().trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("an unknown command is a usage error", async () => {
    capture();
    expect(await main(argv("frobnicate"))).toBe(2);
  });
});

describe("v6agent CLI: --json errors for every command", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "v6agent-cli-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => vi.restoreAllMocks());

  /** Runs the command with --json; returns its exit code and the JSON error it printed on stdout. */
  async function jsonFailure(...args: string[]): Promise<{ code: number; error: Record<string, unknown>; err: string }> {
    const io = capture();
    const code = await main(argv(...args, "--json"));
    return { code, error: (JSON.parse(io.out()) as { error: Record<string, unknown> }).error, err: io.err() };
  }

  const brokenConfig = () => {
    const path = join(dir, "broken.yaml");
    writeFileSync(path, 'management:\n  servers: ["http://a.example"]\n  tokenFile: token\nlogLevel: loud\n');
    return path;
  };

  it("a command-line mistake is code usage, exit 2", async () => {
    const { code, error } = await jsonFailure("addr");
    expect(code).toBe(2);
    expect(error).toEqual({ code: "usage", message: "missing required argument 'mac'" });
    expect((await jsonFailure("guest-config", "--frobnicate")).error).toMatchObject({
      code: "usage",
      message: expect.stringMatching(/unknown option/),
    });
  });

  it("run and run --check: an invalid configuration lists every problem, exit 78", async () => {
    for (const args of [
      ["run", "--config", brokenConfig()],
      ["run", "--check", "--config", brokenConfig()],
    ]) {
      const { code, error, err } = await jsonFailure(...args);
      expect(code).toBe(78);
      expect(error.code).toBe("invalid_argument");
      expect((error.problems as { field: string }[]).map((problem) => problem.field)).toEqual([
        "management.servers[0]",
        "management.tokenFile",
        "logLevel",
      ]);
      expect(err).toMatch(/^v6agent: 3 problems in .*broken\.yaml:\n {2}management\.servers\[0\]: /);
    }
    const missing = await jsonFailure("run", "--config", join(dir, "missing.yaml"));
    expect(missing.code).toBe(78);
    expect(missing.error.message).toMatch(/missing\.yaml: cannot read the configuration file/);
  });

  it("diag with an invalid configuration", async () => {
    const { code, error } = await jsonFailure("diag", "--config", brokenConfig());
    expect(code).toBe(1);
    expect((error.problems as unknown[]).length).toBe(3);
  });

  it("status without a daemon: a clear message and exit 3, whether there is no socket or a dead one", async () => {
    const absent = join(dir, "absent.sock");
    let result = await jsonFailure("status", "--socket", absent);
    expect(result.code).toBe(3);
    expect(result.error).toMatchObject({
      code: "unavailable",
      message: `v6agent is not running: no status socket at ${absent} (systemctl status v6agent)`,
    });
    // A socket a killed daemon left: a process listened on it and was killed (SIGKILL leaves the file).
    const stale = join(dir, "stale.sock");
    const holder = spawn(process.execPath, [
      "-e",
      `require("net").createServer().listen(${JSON.stringify(stale)}, () => console.log("up"))`,
    ]);
    await new Promise((resolve) => holder.stdout.once("data", resolve));
    holder.kill("SIGKILL");
    await new Promise((resolve) => holder.once("exit", resolve));
    expect(existsSync(stale)).toBe(true);
    result = await jsonFailure("status", "--socket", stale);
    expect(result.code).toBe(3);
    expect(result.error.message).toMatch(/^v6agent is not running: nothing answers on .*stale\.sock/);
    const text = capture();
    expect(await main(argv("status", "--socket", absent))).toBe(3);
    expect(text.err()).toBe(`v6agent: v6agent is not running: no status socket at ${absent} (systemctl status v6agent)\n`);
    expect(text.out()).toBe("");
  });
});

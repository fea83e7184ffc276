import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import type { LabResult } from "../../src/lab/lab-result.js";
import type { LabRecord } from "../../src/lab/lab-state.js";
import { skipReason } from "../support/requirements.js";

const execFileAsync = promisify(execFile);
const CLI = "dist/src/cli.js";
const LAB_RECORD = "/run/v6agent-lab/lab.json";

const skipXen = skipReason({ root: true, commands: ["ip", "dnsmasq", "dhclient", "ebtables", "ip6tables-restore", "pgrep"] });
const skipKvm = skipReason({
  root: true,
  commands: ["ip", "dnsmasq", "dhclient", "nft", "libvirtd", "virtlogd", "virsh", "qemu-system-x86_64", "stty", "pgrep"],
});

/** Runs the built CLI; never throws on a non-zero exit (the test asserts the code). */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CLI, ...args], { timeout: 400_000, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === "number" ? failed.code : -1, stdout: failed.stdout ?? "", stderr: failed.stderr ?? "" };
  }
}

/** A tool's output; a tool that fails (other than with an exit code in `ok`) fails the test, so "no traces" is never "could not look". */
async function output(command: string, args: string[], ok: readonly number[] = [0]): Promise<string> {
  try {
    return (await execFileAsync(command, args, { timeout: 60_000 })).stdout;
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    if (typeof failed.code === "number" && ok.includes(failed.code)) return failed.stdout ?? "";
    throw new Error(`${command} ${args.join(" ")} failed (${String(failed.code)}): ${failed.stderr ?? ""}`);
  }
}

/** Everything on this machine that could carry a lab's name, as the operator would look. */
async function traces(names: readonly string[]) {
  const matches = (text: string) => text.split("\n").filter((line) => /v6lab/.test(line) || names.some((name) => line.includes(name)));
  const links = JSON.parse(await output("ip", ["-json", "link", "show"])) as { ifname: string }[];
  return {
    namespaces: matches(await output("ip", ["netns", "list"])),
    links: links.map((link) => link.ifname).filter((name) => name.startsWith("v6lab") || names.includes(name)),
    // No libvirtd running (the XenServer lab needs none): no domain can be running either.
    domains:
      existsSync("/usr/bin/virsh") && existsSync("/run/libvirt/libvirt-sock")
        ? matches(await output("virsh", ["-c", "qemu:///system", "list", "--all", "--name"]))
        : [],
    processes: matches(await output("pgrep", ["-af", "v6agent-lab|v6lab"], [0, 1])).filter((line) => !line.includes("vitest")),
    nftTables: (await output("nft", ["list", "tables"])).split("\n").filter((line) => line.trim() === "table bridge v6agent"),
    ebtables: matches(await output("ebtables", ["-L"])),
  };
}

function assertSequence(result: LabResult, hypervisor: "kvm" | "xenserver", guests: number): void {
  expect(result).toMatchObject({
    ok: true,
    hypervisor,
    addressesOk: true,
    attacksDropped: true,
    identitiesOk: true,
    network: "2001:db8:6c:1::/64",
  });
  // The N guests asked for, then the one left with dhclient's own DUID-LLT.
  expect(result.guests).toHaveLength(guests + 1);
  const attacker = result.guests.find((guest) => guest.role === "attacker");
  const victims = result.guests.filter((guest) => guest.role === "victim");
  expect(victims).toHaveLength(guests - 1);
  for (const guest of result.guests) {
    expect(guest.duidLL).toBe(`00:03:00:01:${guest.mac}`);
    expect(guest.linkLocal).toMatch(/^fe80::5054:ff:fe6c:/);
    if (guest.dhcpClient && guest.role !== "duid-llt") expect(guest.obtained).toContain(guest.expected);
  }
  const unconfigured = result.guests.find((guest) => guest.role === "duid-llt");
  expect(unconfigured).toMatchObject({ duidMatches: false, observedDuid: expect.stringMatching(/^DUID-LLT 00:01:00:01:/) });
  expect(unconfigured?.obtained).not.toContain(unconfigured?.expected);
  for (const victim of victims) {
    expect(victim).toMatchObject({ duidMatches: true, observedDuid: `DUID-LL 00:03:00:01:${victim.mac}` });
    expect(victim.obtained).toEqual([victim.expected]);
    expect(victim.attack).toMatchObject({ rogueRouteAbsent: true, rogueAddressAbsent: true, defaultRouteKept: true, addressKept: true });
    expect(victim.attack?.routersSeen).toHaveLength(1);
  }
  expect(attacker?.role).toBe("attacker");
  expect(attacker?.drops.ra).toBeGreaterThan(0);
  expect(attacker?.drops.dhcpv6Server).toBeGreaterThan(0);
}

describe("v6agent lab (the README's main job), built CLI", () => {
  it.skipIf(skipXen !== undefined)(
    "XenServer simulator, netns guests, xtables, --keep: every guest holds its address, every attack is dropped; a second lab is refused; lab down leaves nothing",
    async () => {
      expect(existsSync(LAB_RECORD)).toBe(false);
      const before = await traces([]);
      const run = await cli("lab", "--guest-kind", "netns", "--backend", "xtables", "--guests", "3", "--keep", "--json");
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      const result = JSON.parse(run.stdout) as LabResult;
      assertSequence(result, "xenserver", 3);
      expect(result.kept).toBe(true);

      // Still up: the record, its processes, its namespaces.
      const record = JSON.parse(readFileSync(LAB_RECORD, "utf8")) as LabRecord;
      expect(record.namespaces).toEqual(expect.arrayContaining(["v6lab-host", "v6lab-rt", "v6lab-g1", "v6lab-g3"]));
      expect((await traces([])).namespaces.length).toBeGreaterThanOrEqual(5);
      for (const entry of record.pids.filter((pid) => ["mgmt", "agent", "xapi-sim"].includes(pid.name))) {
        expect(() => process.kill(entry.pid, 0)).not.toThrow();
      }

      const again = await cli("lab", "--guest-kind", "netns");
      expect(again.code).toBe(1);
      expect(again.stderr).toContain("a lab is already up");
      expect(again.stderr).toContain("v6agent lab down");

      const down = await cli("lab", "down");
      expect(down.code).toBe(0);
      expect(down.stdout).toContain("v6lab-host");
      expect(existsSync(LAB_RECORD)).toBe(false);
      for (const entry of record.pids) expect(() => process.kill(entry.pid, 0)).toThrow();
      const after = await traces([]);
      expect(after.namespaces).toEqual([]);
      expect(after.links).toEqual([]);
      expect(after.processes).toEqual([]);
      expect(after.ebtables).toEqual([]);
      expect(after.nftTables).toEqual(before.nftTables);
    },
  );

  it.skipIf(skipKvm !== undefined)(
    "KVM with real VMs (the default), nft: the rogue VM's RA and DHCPv6 are dropped, the victim keeps its reserved address; the lab removes itself",
    async () => {
      expect(existsSync(LAB_RECORD)).toBe(false);
      const before = await traces([]);
      const run = await cli("lab", "--json");
      expect(run.code).toBe(0);
      const result = JSON.parse(run.stdout) as LabResult;
      assertSequence(result, "kvm", 2);
      expect(result.guestKind).toBe("vm");
      expect(result.kept).toBe(false);
      expect(result.guests.find((guest) => guest.role === "attacker")?.dhcpClient).toBe(false);
      expect(existsSync(LAB_RECORD)).toBe(false);
      const after = await traces([result.bridge, ...result.guests.map((guest) => guest.device ?? "v6lab")]);
      expect(after.namespaces).toEqual([]);
      expect(after.links).toEqual([]);
      expect(after.domains).toEqual([]);
      expect(after.processes).toEqual([]);
      expect(after.ebtables).toEqual([]);
      // The table goes unless another agent on this host had one before the lab.
      expect(after.nftTables).toEqual(before.nftTables);
    },
  );
});

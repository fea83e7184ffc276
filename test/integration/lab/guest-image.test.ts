import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { run } from "../../../src/exec.js";
import { buildCpio } from "../../../src/lab/cpio.js";
import { buildGuestImage, parseGuestConsole } from "../../../src/lab/guest-image.js";
import { skipReason } from "../../support/requirements.js";

const skip = skipReason({ commands: ["cpio", "ldd"] });

describe.skipIf(skip !== undefined)("guest image", () => {
  it("writes newc archives that GNU cpio reads back byte for byte", async () => {
    const archive = buildCpio([
      { kind: "directory", path: "etc" },
      { kind: "file", path: "etc/odd", data: Buffer.from("abc"), mode: 0o600 },
      { kind: "symlink", path: "sh", target: "busybox" },
      { kind: "char-device", path: "console", major: 5, minor: 1 },
    ]);
    const directory = mkdtempSync(join(tmpdir(), "v6-cpio-"));
    const file = join(directory, "archive.cpio");
    writeFileSync(file, archive);
    const listing = await run("cpio", ["-t", "-v", "--quiet", "-F", file]).finally(() =>
      rmSync(directory, { recursive: true, force: true }),
    );
    const lines = listing.stdout.trim().split("\n");
    expect(lines).toHaveLength(4);
    expect(lines[1]).toMatch(/^-rw------- .* 3 .* etc\/odd$/);
    expect(lines[2]).toMatch(/^lrwxrwxrwx .* sh -> busybox$/);
    expect(lines[3]).toMatch(/^crw------- .* 5,\s+1 .* console$/);
  });

  it("builds the kernel and an initramfs with init, busybox, dhclient, its loader and virtio_net, and caches it", async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), "v6-image-"));
    try {
      const image = await buildGuestImage({ cacheDir });
      const file = join(cacheDir, "initramfs.cpio");
      writeFileSync(file, gunzipSync(readFileSync(image.initrd)));
      const { stdout } = await run("cpio", ["-t", "--quiet", "-F", file]);
      const names = stdout.trim().split("\n");
      for (const name of [
        "init",
        "bin/busybox",
        "bin/dhclient",
        "bin/dhclient-script",
        "bin/dnsmasq",
        "etc/passwd",
        "lib/modules/virtio_net.ko",
        "dev/console",
      ]) {
        expect(names).toContain(name);
      }
      expect(names.some((name) => /^lib64\/ld-linux-x86-64\.so\.2$/.test(name))).toBe(true);
      expect(await buildGuestImage({ cacheDir })).toEqual(image);
    } finally {
      rmSync(cacheDir, { recursive: true, force: true });
    }
  });

  it("reads the guest's console report", () => {
    const report = parseGuestConsole(
      "noise\r\nV6GUEST boot\nV6GUEST ll eth0 fe80::5054:ff:fe00:42\n[ 1.2] x V6GUEST addr eth0 2001:db8::42\nV6GUEST global eth0 2001:db8::42 \n",
    );
    expect(report.boots).toBe(1);
    expect(report.linkLocal.get("eth0")).toBe("fe80::5054:ff:fe00:42");
    expect(report.addresses.get("eth0")).toEqual(["2001:db8::42"]);
    expect(report.globals.get("eth0")).toEqual(["2001:db8::42"]);
  });

  it("reads the periodic network lines and the rogue marker", () => {
    const report = parseGuestConsole(
      [
        "V6GUEST rogue eth0 2001:db8:66::/64",
        "V6GUEST net eth0 addrs=- routers=-",
        "V6GUEST net eth1 addrs=2001:db8:66::124 routers=fe80::5054:ff:fe00:6601",
        "V6GUEST net eth1 addrs=2001:db8::42,2001:db8::43 routers=fe80::1,fe80::2",
        "",
      ].join("\n"),
    );
    expect(report.rogue.get("eth0")).toBe("2001:db8:66::/64");
    expect(report.network.get("eth0")).toEqual({ addresses: [], routers: [] });
    expect(report.network.get("eth1")).toEqual({ addresses: ["2001:db8::42", "2001:db8::43"], routers: ["fe80::1", "fe80::2"] });
    expect([...(report.everAddresses.get("eth1") ?? [])]).toEqual(["2001:db8:66::124", "2001:db8::42", "2001:db8::43"]);
    expect([...(report.everRouters.get("eth1") ?? [])]).toEqual(["fe80::5054:ff:fe00:6601", "fe80::1", "fe80::2"]);
  });
});

import { afterEach, describe, expect, it, vi } from "vitest";
import { parseInterfaceName, parseMac } from "../../../src/addressing/index.js";
import { main } from "../../../src/cli/main.js";
import { ipv6SysctlKey } from "../../../src/guestconfig/guest-config.js";
import { findGuestOs, formatGuestConfig, GUEST_OSES, type NicRole } from "../../../src/guestconfig/index.js";

const mac = parseMac("52:54:00:12:34:56");
const nic = parseInterfaceName("eth0");

describe("guest-config renderers (golden files)", () => {
  for (const os of GUEST_OSES) {
    for (const role of ["default", "non-default"] as NicRole[]) {
      it(`${os.id} --${role}`, async () => {
        const request = { nic, mac, role };
        await expect(formatGuestConfig(os.render(request), request)).toMatchFileSnapshot(`golden/${os.id}.${role}.txt`);
      });
    }
  }
});

describe("guest-config semantics", () => {
  it.each(GUEST_OSES.map((os) => os.id))("%s: a non-default NIC turns Router Advertisements off, a default NIC does not", (id) => {
    const os = findGuestOs(id);
    const text = (role: NicRole) =>
      os
        .render({ nic, role })
        .files.map((file) => file.content)
        .join("\n")
        .concat(
          os
            .render({ nic, role })
            .commands.map((argv) => argv.join(" "))
            .join("\n"),
        );
    const raOff = /accept_ra\s*=?\s*0|accept-ra: false|IPv6AcceptRA=no|IPV6_AUTOCONF=no|method=dhcp\b/;
    expect(text("non-default")).toMatch(raOff);
    expect(text("default")).not.toMatch(raOff);
  });

  it.each(GUEST_OSES.map((os) => os.id))("%s asks for DUID-LL", (id) => {
    const config = findGuestOs(id).render({ nic, role: "default" });
    const all = `${config.files.map((file) => file.content).join("\n")}\n${config.commands.map((argv) => argv.join(" ")).join("\n")}`;
    expect(all).toMatch(/-D LL|concat\(00:03:00, hardware\)|dhcp-duid=ll|DUIDType=link-layer/);
  });

  it("writes a VLAN interface's sysctl key with a slash for the dot", () => {
    expect(ipv6SysctlKey(parseInterfaceName("eth0.100"), "accept_ra")).toBe("net.ipv6.conf.eth0/100.accept_ra");
  });

  it("finds an OS by alias, case-insensitively", () => {
    expect(findGuestOs("RHEL6").id).toBe("centos6");
    expect(findGuestOs("ubuntu-ifupdown").id).toBe("debian-ifupdown");
  });
});

describe("v6agent guest-config", () => {
  afterEach(() => vi.restoreAllMocks());

  function capture() {
    const out: string[] = [];
    const err: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => out.push(String(chunk)) > 0);
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => err.push(String(chunk)) > 0);
    return { out: () => out.join(""), err: () => err.join("") };
  }
  const run = (...args: string[]) => main(["node", "v6agent", "guest-config", ...args]);

  it("prints the DUID-LL and expected link-local of --mac", async () => {
    const io = capture();
    expect(await run("--os", "dhclient", "--mac", "52-54-00-AB-CD-EF", "--nic", "ens3")).toBe(0);
    expect(io.out()).toContain(
      "# MAC 52:54:00:ab:cd:ef  DUID-LL 00:03:00:01:52:54:00:ab:cd:ef  expected link-local fe80::5054:ff:feab:cdef",
    );
    expect(io.out()).toContain("\ndhclient -6 -D LL ens3\n");
  });

  it("--json prints the files and commands", async () => {
    const io = capture();
    expect(await run("--os", "networkd", "--nic", "ens4", "--non-default", "--json")).toBe(0);
    const config = JSON.parse(io.out());
    expect(config.os).toBe("systemd-networkd");
    expect(config.files[0].path).toBe("/etc/systemd/network/60-v6agent-ens4.network");
    expect(config.files[0].content).toContain("IPv6AcceptRA=no");
  });

  it("refuses an unknown OS and lists the known ones", async () => {
    const io = capture();
    expect(await run("--os", "windows")).toBe(1);
    expect(io.err()).toMatch(
      /^v6agent: --os: unknown guest OS "windows"; known: dhclient, dhclient-4.1, centos6, debian-ifupdown, netplan/,
    );
    expect(io.out()).toBe("");
  });

  it("refuses a missing --os", async () => {
    const io = capture();
    expect(await run()).toBe(1);
    expect(io.err()).toContain("--os: choose a guest OS: dhclient,");
  });

  it("refuses a bad MAC naming --mac", async () => {
    const io = capture();
    expect(await run("--os", "netplan", "--mac", "01:00:5e:00:00:01")).toBe(1);
    expect(io.err()).toMatch(/^v6agent: --mac: .*multicast/);
  });

  it("refuses an interface name that could smuggle syntax, naming --nic", async () => {
    const io = capture();
    expect(await run("--os", "networkmanager", "--nic", "eth0\n[ipv6]")).toBe(1);
    expect(io.err()).toMatch(/^v6agent: --nic: /);
    expect(io.out()).toBe("");
  });

  it("refuses --default with --non-default", async () => {
    const io = capture();
    expect(await run("--os", "netplan", "--default", "--non-default")).toBe(1);
    expect(io.err()).toContain("mutually exclusive");
  });

  it("--help lists every OS id", async () => {
    const io = capture();
    expect(await run("--help")).toBe(0);
    for (const os of GUEST_OSES) expect(io.out()).toContain(`  ${os.id} `);
  });
});

import { afterEach, describe, expect, it, vi } from "vitest";
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

  it("refuses a /48 naming /48 and /64", async () => {
    const io = capture();
    expect(await main(argv("addr", "52:54:00:12:34:56", "--prefix", "2001:db8::/48", "--json"))).toBe(1);
    expect(io.err()).toMatch(/\/48/);
    expect(io.err()).toMatch(/\/64/);
    expect(io.out()).toBe("");
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

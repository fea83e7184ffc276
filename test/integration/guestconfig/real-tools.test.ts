import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Mac, parseInterfaceName, parseMac } from "../../../src/addressing/index.js";
import { run } from "../../../src/exec.js";
import { findGuestOs, type GuestConfig, type NicRole } from "../../../src/guestconfig/index.js";
import { Netns } from "../../support/netns.js";
import { skipReason } from "../../support/requirements.js";

/**
 * Every guest-config variant fed to the real tool that reads it, inside throwaway network
 * namespaces: dhclient and systemd-networkd really send a DHCPv6 Solicit, and the test reads the
 * client identifier off the wire; netplan generates, NetworkManager's offline keyfile parser
 * loads, ifupdown plans (-n) what it would run. Each check also has a broken input it rejects.
 * The *.wire.test.ts files beside this one run each OS's own start-up against a real router.
 */

const mac = parseMac("52:54:00:12:34:56");
const nic = parseInterfaceName("gc0");
/** How tcpdump -vv prints a DUID-LL client identifier for `mac`. */
const duidOnWire = (m: Mac) => `client-ID hwaddr type 1 ${m.replaceAll(":", "")}`;

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "v6agent-guestcfg-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function render(os: string, role: NicRole): GuestConfig {
  return findGuestOs(os).render({ nic, mac, role });
}

function fileContent(config: GuestConfig, pathPattern: RegExp): string {
  const file = config.files.find((candidate) => pathPattern.test(candidate.path));
  if (file === undefined) throw new Error(`no file matching ${pathPattern} in ${config.os}`);
  return file.content;
}

async function writeTemp(name: string, content: string): Promise<string> {
  const path = join(work, name);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
  return path;
}

/** A guest namespace with `nic` (carrying `mac`) and a peer `gc1` to listen on; DAD off so the link-local is usable at once. */
async function guestNetns(): Promise<Netns> {
  const netns = await Netns.create("gcfg");
  await netns.exec("sysctl", ["-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]);
  await netns.exec("ip", ["link", "add", nic, "address", mac, "type", "veth", "peer", "name", "gc1"]);
  await netns.exec("ip", ["link", "set", "gc1", "up"]);
  return netns;
}

/** dhclient -6 refuses to start before the NIC has its link-local address. */
async function waitForLinkLocal(netns: Netns): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const addresses = await netns.ipJson<{ addr_info: { scope: string }[] }[]>(["-6", "addr", "show", "dev", nic]);
    if (addresses.some((link) => link.addr_info.some((info) => info.scope === "link"))) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${nic} got no link-local address`);
}

/**
 * Runs `client` (which must stop by itself) while tcpdump waits for one DHCPv6 Solicit on the
 * peer. Clients retransmit Solicits, so tcpdump catches one even if it starts after the first.
 */
async function captureSolicit(netns: Netns, client: () => Promise<{ stderr: string }>): Promise<{ packet: string; clientStderr: string }> {
  const capture = netns.exec("tcpdump", ["-n", "-l", "-vv", "-c", "1", "-i", "gc1", "udp", "dst", "port", "547"], { timeoutMs: 30_000 });
  const [packet, clientResult] = await Promise.all([capture, client()]);
  return { packet: packet.stdout, clientStderr: clientResult.stderr };
}

/** dhclient in the foreground for a few seconds with its files kept in the work dir. */
function dhclientArgs(extra: readonly string[], tag: string): string[] {
  return [
    "5",
    "dhclient",
    "-6",
    "-d",
    "-1",
    "-v",
    "-lf",
    join(work, `${tag}.leases`),
    "-pf",
    join(work, `${tag}.pid`),
    "-sf",
    "/bin/true",
    ...extra,
  ];
}

const PARSE_ERROR = /line \d+: /;

describe("dhclient variants, run by the real dhclient", () => {
  const reason = skipReason({ root: true, commands: ["ip", "tcpdump", "dhclient", "timeout", "sysctl"] });
  let netns: Netns;
  beforeAll(async () => {
    if (reason === undefined) {
      netns = await guestNetns();
      await netns.exec("ip", ["link", "set", nic, "up"]);
      await waitForLinkLocal(netns);
    }
  });
  afterAll(async () => {
    await netns?.destroy();
  });

  it.skipIf(reason)("dhclient: `dhclient -6 -D LL <nic>` sends DUID-LL; --non-default's sysctl turns accept_ra off", async () => {
    const config = render("dhclient", "non-default");
    const [sysctl, dhclient] = config.commands;
    expect(sysctl).toEqual(["sysctl", "-w", "net.ipv6.conf.gc0.accept_ra=0"]);
    expect(dhclient).toEqual(["dhclient", "-6", "-D", "LL", "gc0"]);
    await netns.exec(sysctl?.[0] as string, sysctl?.slice(1) ?? []);
    expect((await netns.exec("sysctl", ["-n", "net.ipv6.conf.gc0.accept_ra"])).stdout.trim()).toBe("0");
    // The sysctl.d file says the same: reset, load it with sysctl -p, read back.
    await netns.exec("sysctl", ["-qw", "net.ipv6.conf.gc0.accept_ra=1"]);
    await netns.exec("sysctl", ["-p", await writeTemp("dhclient-sysctl.conf", fileContent(config, /sysctl\.d/))]);
    expect((await netns.exec("sysctl", ["-n", "net.ipv6.conf.gc0.accept_ra"])).stdout.trim()).toBe("0");

    await writeFile(join(work, "dhclient-ll.leases"), "");
    const emptyConf = await writeTemp("empty.conf", "");
    const args = dhclientArgs(["-cf", emptyConf, ...(dhclient?.slice(1) ?? [])], "dhclient-ll");
    const { packet } = await captureSolicit(netns, () => netns.exec("timeout", args, { okExitCodes: [124], timeoutMs: 20_000 }));
    expect(packet).toContain("dhcp6 solicit");
    expect(packet).toContain(duidOnWire(mac));
  });

  for (const [os, filePattern] of [
    ["dhclient-4.1", /dhclient\.conf$/],
    ["centos6", /dhclient6-gc0\.conf$/],
    ["debian-ifupdown", /\/etc\/dhcp\/dhclient\.conf$/],
  ] as const) {
    it.skipIf(reason)(`${os}: dhclient parses the config file cleanly and sends DUID-LL`, async () => {
      const conf = await writeTemp(`${os}.conf`, fileContent(render(os, "default"), filePattern));
      await writeFile(join(work, `${os}.leases`), "");
      const { packet, clientStderr } = await captureSolicit(netns, () =>
        netns.exec("timeout", dhclientArgs(["-cf", conf, nic], os), { okExitCodes: [124], timeoutMs: 20_000 }),
      );
      expect(clientStderr).not.toMatch(PARSE_ERROR);
      expect(packet).toContain(duidOnWire(mac));
    });
  }

  it.skipIf(reason)("the dhclient check rejects a broken statement (so it can fail)", async () => {
    const conf = await writeTemp("broken.conf", "send dhcp6.client-id = concat(00:03:00 hardware);\n");
    await writeFile(join(work, "broken.leases"), "");
    const result = await netns.exec("timeout", ["3", ...dhclientArgs(["-cf", conf, nic], "broken").slice(1)], { okExitCodes: [0, 1, 124] });
    expect(result.stderr).toMatch(PARSE_ERROR);
  });
});

/**
 * systemd-networkd for real inside the namespace: a private mount namespace gets an empty
 * /run/systemd, an empty /run/dbus (so it never registers on the host's system bus), the test's
 * directory as /etc/systemd/network, and a read-only /sys (networkd then does not wait for udev). It runs for a few seconds, then timeout stops it.
 */
const NETWORKD_SCRIPT =
  'mount -t tmpfs none /run/systemd && mount -t tmpfs none /run/dbus && mount -o remount,bind,ro /sys && mount --bind "$1" /etc/systemd/network && SYSTEMD_LOG_LEVEL=debug SYSTEMD_LOG_TARGET=console exec /lib/systemd/systemd-networkd';

async function runNetworkd(netns: Netns, directory: string): Promise<string> {
  const result = await netns.exec(
    "timeout",
    ["6", "unshare", "--mount", "--propagation", "private", "sh", "-c", NETWORKD_SCRIPT, "sh", directory],
    {
      okExitCodes: [124],
      timeoutMs: 20_000,
    },
  );
  return result.stdout + result.stderr;
}

/** networkd prints `<path>:<line>: <problem>` for anything in a file it does not accept. */
function networkdComplaints(log: string): string[] {
  return log.split("\n").filter((line) => /^\/etc\/systemd\/network\/.*:\d+: /.test(line));
}

describe("systemd-networkd and netplan variants, run by the real systemd-networkd", () => {
  const reason = skipReason({ root: true, commands: ["ip", "tcpdump", "timeout", "unshare", "/lib/systemd/systemd-networkd", "netplan"] });

  it.skipIf(reason)("systemd-networkd --non-default: loads cleanly and solicits with DUID-LL without any RA", async () => {
    const directory = join(work, "networkd-nd");
    const config = render("systemd-networkd", "non-default");
    await writeTemp("networkd-nd/60-v6agent-gc0.network", fileContent(config, /\.network$/));
    const netns = await guestNetns();
    try {
      const [{ packet }, log] = await Promise.all([captureSolicit(netns, async () => ({ stderr: "" })), runNetworkd(netns, directory)]);
      expect(log).toContain("gc0: Configuring with /etc/systemd/network/60-v6agent-gc0.network");
      expect(networkdComplaints(log)).toEqual([]);
      expect(packet).toContain(duidOnWire(mac));
    } finally {
      await netns.destroy();
    }
  });

  it.skipIf(reason)("systemd-networkd --default: loads cleanly", async () => {
    const directory = join(work, "networkd-d");
    await writeTemp("networkd-d/60-v6agent-gc0.network", fileContent(render("systemd-networkd", "default"), /\.network$/));
    const netns = await guestNetns();
    try {
      const log = await runNetworkd(netns, directory);
      expect(log).toContain("gc0: Configuring with /etc/systemd/network/60-v6agent-gc0.network");
      expect(networkdComplaints(log)).toEqual([]);
    } finally {
      await netns.destroy();
    }
  });

  it.skipIf(reason)("the networkd check reports an unknown key (so it can fail)", async () => {
    const directory = join(work, "networkd-bad");
    await writeTemp("networkd-bad/60-bad.network", "[Match]\nName=gc0\n[Network]\nDHCP=ipv6\nAcceptRA=no\n");
    const netns = await guestNetns();
    try {
      expect(networkdComplaints(await runNetworkd(netns, directory))).toEqual([
        expect.stringContaining("/etc/systemd/network/60-bad.network:5: Unknown key"),
      ]);
    } finally {
      await netns.destroy();
    }
  });

  for (const role of ["default", "non-default"] as const) {
    it.skipIf(reason)(`netplan --${role}: netplan generate accepts it, networkd loads the result plus the DUID drop-in`, async () => {
      const config = render("netplan", role);
      const root = join(work, `netplan-${role}`);
      const yamlPath = join(root, "etc/netplan/60-v6agent-gc0.yaml");
      await writeTemp(`netplan-${role}/etc/netplan/60-v6agent-gc0.yaml`, fileContent(config, /\.yaml$/));
      await chmod(yamlPath, 0o600);
      await run("netplan", ["generate", "--root-dir", root]);
      const generated = join(root, "run/systemd/network/10-netplan-gc0.network");
      const network = await readFile(generated, "utf8");
      expect(network).toContain("DHCP=ipv6");
      expect(network).toContain(role === "non-default" ? "IPv6AcceptRA=no" : "IPv6AcceptRA=yes");

      const directory = join(work, `netplan-networkd-${role}`);
      await writeTemp(`netplan-networkd-${role}/10-netplan-gc0.network`, network);
      await writeTemp(
        `netplan-networkd-${role}/10-netplan-gc0.network.d/60-v6agent-dhcpv6.conf`,
        fileContent(config, /10-netplan-gc0\.network\.d\//),
      );
      const netns = await guestNetns();
      try {
        if (role === "non-default") {
          // No RA on this NIC: the Solicit with DUID-LL can only come from the drop-in (DUIDType, WithoutRA).
          const [{ packet }, log] = await Promise.all([captureSolicit(netns, async () => ({ stderr: "" })), runNetworkd(netns, directory)]);
          expect(networkdComplaints(log)).toEqual([]);
          expect(packet).toContain(duidOnWire(mac));
        } else {
          const log = await runNetworkd(netns, directory);
          expect(log).toContain("gc0: Configuring with /etc/systemd/network/10-netplan-gc0.network");
          expect(networkdComplaints(log)).toEqual([]);
        }
      } finally {
        await netns.destroy();
      }
    });
  }

  it.skipIf(reason)("the netplan check rejects a bad key (so it can fail)", async () => {
    const root = join(work, "netplan-bad");
    await writeTemp(
      "netplan-bad/etc/netplan/60-bad.yaml",
      "network:\n  version: 2\n  ethernets:\n    gc0:\n      dhcp6: true\n      accept_ra: false\n",
    );
    await chmod(join(root, "etc/netplan/60-bad.yaml"), 0o600);
    await expect(run("netplan", ["generate", "--root-dir", root])).rejects.toThrow(/unknown key 'accept_ra'/);
  });
});

describe("NetworkManager keyfile, loaded by the real nmcli --offline", () => {
  const reason = skipReason({ commands: ["nmcli"] });

  /** `nmcli --offline connection modify` reads a keyfile on stdin, validates it and prints it back. */
  const loadKeyfile = (keyfile: string) =>
    run("nmcli", ["--offline", "connection", "modify", "connection.autoconnect", "yes"], { input: keyfile });

  for (const role of ["default", "non-default"] as const) {
    it.skipIf(reason)(`networkmanager --${role}: NetworkManager accepts the keyfile and keeps every setting`, async () => {
      const { stdout } = await loadKeyfile(fileContent(render("networkmanager", role), /\.nmconnection$/));
      expect(stdout).toContain("interface-name=gc0");
      expect(stdout).toContain("mac-address=52:54:00:12:34:56");
      expect(stdout).toContain("dhcp-duid=ll");
      expect(stdout).toContain("addr-gen-mode=eui64");
      expect(stdout).toContain(role === "non-default" ? "method=dhcp" : "method=auto");
      if (role === "non-default") expect(stdout).toContain("never-default=true");
    });
  }

  it.skipIf(reason)("the keyfile check rejects an invalid DUID (so it can fail)", async () => {
    const broken = fileContent(render("networkmanager", "default"), /\.nmconnection$/).replace("dhcp-duid=ll", "dhcp-duid=mac-ish");
    await expect(loadKeyfile(broken)).rejects.toThrow(/invalid DUID/);
  });
});

describe("ifupdown stanza, planned by the real ifup -n", () => {
  const reason = skipReason({ root: true, commands: ["ifup"] });

  for (const role of ["default", "non-default"] as const) {
    it.skipIf(reason)(
      `debian-ifupdown --${role}: ifup would set accept_ra ${role === "default" ? 1 : 0}, autoconf 0 and run dhclient -6`,
      async () => {
        const interfaces = await writeTemp(`ifupdown-${role}/interfaces`, fileContent(render("debian-ifupdown", role), /interfaces\.d/));
        const stateDir = join(work, `ifupdown-${role}/state`);
        await mkdir(stateDir, { recursive: true });
        const { stdout, stderr } = await run("ifup", ["-n", "-v", "-i", interfaces, "--state-dir", stateDir, nic]);
        const plan = stdout + stderr;
        expect(plan).toContain(`net.ipv6.conf.gc0.accept_ra=${role === "default" ? 1 : 0}`);
        expect(plan).toContain("net.ipv6.conf.gc0.autoconf=0");
        // No -cf: dhclient -6 reads /etc/dhcp/dhclient.conf, the file the variant appends to
        // (the *.wire.test.ts files run it for real).
        expect(plan).toMatch(/^dhclient -6 (?!.*-cf ).* gc0$/m);
      },
    );
  }
});

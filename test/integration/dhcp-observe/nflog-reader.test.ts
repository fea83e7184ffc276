import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseMac } from "../../../src/addressing/index.js";
import { type NflogPacket, openNflog, parseDhcpv6Packet } from "../../../src/dhcp-observe/index.js";
import { Netns, vethBetween } from "../../support/netns.js";
import { skipReason } from "../../support/requirements.js";
import { until } from "../../support/wait.js";

/**
 * The native NFLOG reader (native/src/nflog.cc) against real log rules in a namespace: a host
 * namespace with a bridge and a guest's port, a guest namespace whose real dhclient solicits.
 * Each rule kind the agent may use logs to the reader: nft `log group` (bridge family),
 * ebtables' NFLOG watcher and ip6tables' NFLOG target (through br_netfilter).
 */
const reason = skipReason({
  root: true,
  commands: ["ip", "nft", "ebtables", "ip6tables", "dhclient", "timeout", "sysctl", "/usr/bin/python3"],
});
const mac = parseMac("52:54:00:4c:00:01");
const GROUP = 4547;

let host: Netns;
let guest: Netns;
let work: string;

beforeAll(async () => {
  if (reason !== undefined) return;
  work = await mkdtemp(join(tmpdir(), "v6agent-nflog-"));
  host = await Netns.create("nflh");
  guest = await Netns.create("nflg");
  await host.exec("ip", ["link", "add", "br0", "type", "bridge"]);
  await host.exec("ip", ["link", "set", "br0", "up"]);
  await vethBetween(host, "vnet0", guest, "eth0", { macB: mac });
  await host.exec("ip", ["link", "set", "vnet0", "master", "br0"]);
  // The router's side: a second port, so the guest's multicast Solicit is forwarded (FORWARD hook).
  await host.exec("ip", ["link", "add", "up0", "type", "veth", "peer", "name", "up1"]);
  await host.exec("ip", ["link", "set", "up0", "master", "br0"]);
  for (const device of ["up0", "up1"]) await host.exec("ip", ["link", "set", device, "up"]);
  await until(async () => {
    const links = await guest.ipJson<{ addr_info: { scope: string; tentative?: boolean }[] }[]>(["-6", "addr", "show", "dev", "eth0"]);
    return links[0]?.addr_info.some((a) => a.scope === "link" && a.tentative !== true);
  }, "the guest's link-local address");
});

afterAll(async () => {
  await guest?.destroy();
  await host?.destroy();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

/** dhclient -6 for a few seconds (Debian's default DUID-LLT, fresh lease file each time). */
async function solicit(tag: string): Promise<void> {
  const conf = join(work, "empty.conf");
  await writeFile(conf, "");
  await guest.exec(
    "timeout",
    [
      "3",
      "dhclient",
      "-6",
      "-d",
      "-1",
      "-cf",
      conf,
      "-lf",
      join(work, `${tag}.leases`),
      "-pf",
      join(work, `${tag}.pid`),
      "-sf",
      "/bin/true",
      "eth0",
    ],
    { okExitCodes: [124], timeoutMs: 20_000 },
  );
}

/** Binds GROUP in the host namespace while `body` runs; returns every packet received. */
async function collect(body: () => Promise<void>): Promise<NflogPacket[]> {
  const packets: NflogPacket[] = [];
  const reader = openNflog({ group: GROUP, netns: host.name }, (batch) => packets.push(...batch));
  try {
    await body();
    await until(() => packets.length > 0, "a logged packet", 10_000);
    return packets;
  } finally {
    reader.close();
  }
}

function expectSolicitFromThePort(packet: NflogPacket | undefined): void {
  expect(packet).toMatchObject({
    group: GROUP,
    physindevName: "vnet0",
    indevName: "br0",
    hwaddr: mac,
    prefix: "v6agent-dhcp6",
    hwProtocol: 0x86dd,
  });
  const parsed = parseDhcpv6Packet(packet?.payload ?? new Uint8Array());
  expect(parsed).toMatchObject({ ok: true, message: { messageName: "Solicit", clientId: { typeName: "DUID-LLT" } } });
}

describe.skipIf(reason)("the NFLOG reader with real log rules", () => {
  it("nft `log group` in the bridge family hands over dhclient's Solicit, with the port it entered by", async () => {
    await host.exec("nft", ["-f", "-"], {
      input: `table bridge nflogtest {
  chain prerouting {
    type filter hook prerouting priority -300; policy accept;
    meta l4proto udp udp dport 547 log group ${GROUP} prefix "v6agent-dhcp6"
  }
}
`,
    });
    try {
      const packets = await collect(() => solicit("nft"));
      expectSolicitFromThePort(packets[0]);
    } finally {
      await host.exec("nft", ["delete", "table", "bridge", "nflogtest"]);
    }
  });

  it("ebtables' NFLOG watcher hands it over too", async () => {
    const rule = [
      "-p",
      "IPv6",
      "-i",
      "vnet0",
      "--ip6-proto",
      "udp",
      "--ip6-dport",
      "547",
      "--nflog-group",
      String(GROUP),
      "--nflog-prefix",
      "v6agent-dhcp6",
      "-j",
      "CONTINUE",
    ];
    await host.exec("ebtables", ["-A", "FORWARD", ...rule]);
    try {
      expectSolicitFromThePort((await collect(() => solicit("eb")))[0]);
    } finally {
      await host.exec("ebtables", ["-D", "FORWARD", ...rule]);
    }
  });

  it("ip6tables' NFLOG target (bridged IPv6 through br_netfilter) hands it over too", async () => {
    await host.sysctl("net.bridge.bridge-nf-call-ip6tables", "1");
    const rule = [
      "-m",
      "physdev",
      "--physdev-in",
      "vnet0",
      "-p",
      "udp",
      "--dport",
      "547",
      "-j",
      "NFLOG",
      "--nflog-group",
      String(GROUP),
      "--nflog-prefix",
      "v6agent-dhcp6",
    ];
    await host.exec("ip6tables", ["-A", "FORWARD", ...rule]);
    try {
      const packet = (await collect(() => solicit("ip6")))[0];
      expect(packet?.family).toBe(10);
      expectSolicitFromThePort(packet);
    } finally {
      await host.exec("ip6tables", ["-D", "FORWARD", ...rule]);
    }
  });

  it("a per-port rate limit in the rule bounds what is logged, and every frame is still forwarded", async () => {
    // 300 Solicits in a burst from the guest (scapy), a log rule limited to 5/s with a burst of
    // 10 for the port, and a counter after it: all 300 pass, at most a few dozen are logged.
    await host.exec("nft", ["-f", "-"], {
      input: `table bridge nflogtest {
  set dhcp6_log { type ifname; size 65535; flags dynamic,timeout; timeout 5m; }
  chain prerouting {
    type filter hook prerouting priority -300; policy accept;
    meta l4proto udp udp dport 547 add @dhcp6_log { iifname limit rate 5/second burst 10 packets } log group ${GROUP} prefix "v6agent-dhcp6"
    meta l4proto udp udp dport 547 counter name passed
  }
  counter passed { }
}
`,
    });
    try {
      const packets: NflogPacket[] = [];
      const reader = openNflog({ group: GROUP, netns: host.name }, (batch) => packets.push(...batch));
      try {
        const script =
          "import sys\nfrom scapy.all import Ether, IPv6, UDP, Raw, sendp\n" +
          "sendp(Ether(src=sys.argv[1], dst='33:33:00:01:00:02') / IPv6(dst='ff02::1:2') / UDP(sport=546, dport=547) / Raw(bytes.fromhex('010000010001000a00030001' + sys.argv[1].replace(':', ''))), iface='eth0', count=300, verbose=False)\n";
        const started = Date.now();
        await guest.exec("/usr/bin/python3", ["-c", script, mac]);
        const seconds = (Date.now() - started) / 1000;
        const passed = await until(async () => {
          const { stdout } = await host.exec("nft", ["-j", "list", "counter", "bridge", "nflogtest", "passed"]);
          const count = (JSON.parse(stdout) as { nftables: { counter?: { packets: number } }[] }).nftables.find((o) => o.counter)?.counter
            ?.packets;
          return count === 300 ? count : undefined;
        }, "all 300 frames past the log rule");
        expect(passed).toBe(300);
        await until(() => packets.length >= 10, "the burst's logged copies", 10_000);
        expect(packets.length).toBeLessThanOrEqual(10 + Math.ceil(5 * (seconds + 1)));
        expect(parseDhcpv6Packet(packets[0]?.payload ?? new Uint8Array())).toMatchObject({
          ok: true,
          message: { clientId: { typeName: "DUID-LL" } },
        });
      } finally {
        reader.close();
      }
    } finally {
      await host.exec("nft", ["delete", "table", "bridge", "nflogtest"]);
    }
  });

  it("a group has one reader per namespace: a second is refused clearly, and may bind once the first closed", () => {
    const first = openNflog({ group: GROUP, netns: host.name }, () => undefined);
    try {
      expect(() => openNflog({ group: GROUP, netns: host.name }, () => undefined)).toThrow(/NFLOG group 4547 already has a listener/);
    } finally {
      first.close();
    }
    const second = openNflog({ group: GROUP, netns: host.name }, () => undefined);
    expect(second.stats()).toEqual({ received: 0, malformed: 0, dropped: 0 });
    second.close();
    second.close();
  });

  it("refuses a bad group or namespace name before touching the kernel", () => {
    expect(() => openNflog({ group: 70000 }, () => undefined)).toThrow(/expected an integer 0..65535/);
    expect(() => openNflog({ group: 1, netns: "../x" }, () => undefined)).toThrow(/network namespace name/);
    expect(() => openNflog({ group: 1, netns: "no-such-ns-v6a" }, () => undefined)).toThrow(/cannot enter network namespace/);
  });
});

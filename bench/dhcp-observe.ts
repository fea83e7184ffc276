/**
 * What the DHCPv6 identity capture costs the forwarding path: round-trip times through a bridge
 * carrying the agent's real nft ruleset for one guest port, in three variants, same run, rounds
 * interleaved (A B C A B C ...) so drift hits all alike:
 *   none      — the agent's ruleset without the DHCPv6 log rule (the baseline)
 *   limited   — with the log rule as the agent installs it (4/s per port, burst 8) and the
 *               agent's NFLOG reader taking the copies
 *   every     — the log rule without its limit: every DHCPv6 client message copied (worst case)
 * Flows, from the guest to a "router" namespace behind the bridge's trusted port, one packet in
 * flight: udp/547 (a DHCPv6 Solicit with a DUID-LL, which the rule logs), udp/9000 (ordinary
 * traffic) and ICMPv6 echo (ping). Printed per variant and flow: p50, p90, p99 and mean in µs.
 * Run: npm run build && node dist/bench/dhcp-observe.js [samples-per-round] [rounds]
 */
import { eui64LinkLocal, type InterfaceName, type Mac } from "../src/addressing/index.js";
import { openNflog } from "../src/dhcp-observe/index.js";
import { startDaemon } from "../src/exec.js";
import { DHCP6_LOG_GROUP, DHCP6_LOG_PREFIX, nftDhcp6LogRule, nftDhcp6LogSet } from "../src/firewall/dhcp6-log.js";
import { createFirewall } from "../src/firewall/index.js";
import type { FirewallState } from "../src/firewall/model.js";
import { nft } from "../src/firewall/nft/libnftables.js";
import { TABLE } from "../src/firewall/nft/names.js";
import { skeletonRules } from "../src/firewall/nft/skeleton.js";
import { Netns, vethBetween } from "../src/lab/netns.js";

const SAMPLES = Number(process.argv[2] ?? 2000);
const ROUNDS = Number(process.argv[3] ?? 5);
const GUEST_MAC = "52:54:00:be:00:01" as Mac;
const ROUTER_MAC = "52:54:00:be:00:fe" as Mac;
const CLIENT_TYPES = "{ 1, 3-6, 8, 9, 11 }";

/** Echoes every datagram on ports 547 and 9000 back to its sender. */
const ECHO_SERVER = `import select, socket
socks = []
for port in (547, 9000):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind(("::", port))
    socks.append(s)
while True:
    for s in select.select(socks, [], [])[0]:
        data, peer = s.recvfrom(2048)
        s.sendto(data, peer)
`;

/** Sends argv[3] datagrams one at a time from port argv[2] to argv[1], prints each RTT in ns. */
const PROBE = `import socket, sys, time
dst, sport, count, payload = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), bytes.fromhex(sys.argv[4])
dport = 547 if sport == 546 else 9000
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("::", sport))
s.settimeout(1)
addr = socket.getaddrinfo(dst, dport, socket.AF_INET6, socket.SOCK_DGRAM)[0][4]
out = []
for i in range(count + 50):
    t = time.perf_counter_ns()
    s.sendto(payload, addr)
    try:
        s.recvfrom(2048)
    except socket.timeout:
        continue
    if i >= 50:
        out.append(time.perf_counter_ns() - t)
print(" ".join(map(str, out)))
`;

const host = await Netns.create("bdo-h");
const guest = await Netns.create("bdo-g");
const router = await Netns.create("bdo-r");
let echo: ReturnType<typeof startDaemon> | undefined;
try {
  await host.exec("ip", ["link", "add", "br0", "type", "bridge"]);
  await host.exec("ip", ["link", "set", "br0", "up"]);
  for (const ns of [guest, router])
    await ns.exec("sysctl", ["-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]);
  await vethBetween(host, "vnet0", guest, "eth0", { macB: GUEST_MAC });
  await vethBetween(host, "uplink0", router, "eth0", { macB: ROUTER_MAC });
  for (const port of ["vnet0", "uplink0"]) await host.exec("ip", ["link", "set", port, "master", "br0"]);
  const firewall = await createFirewall({ backend: "nft", netns: host.name });
  const state: FirewallState = {
    bridges: [{ name: "br0" as InterfaceName, trustedPorts: ["uplink0" as InterfaceName], guestPortPatterns: ["vnet*"] }],
    ports: [
      {
        device: "vnet0" as InterfaceName,
        bridge: "br0" as InterfaceName,
        mac: GUEST_MAC,
        linkLocals: [eui64LinkLocal(GUEST_MAC)],
        ipv6: [],
        ipv4: [],
      },
    ],
  };
  await firewall.reconcile(state);
  await nft(nftDhcp6LogSet(`bridge ${TABLE}`), { netns: host.name });
  const acceptOnly = (skeletonRules().find((c) => c.chain === "dhcp6_client_message")?.rules ?? []).filter((r) => !r.includes(" log "));
  const variants: Record<string, string[]> = {
    none: acceptOnly,
    limited: [nftDhcp6LogRule(CLIENT_TYPES), ...acceptOnly],
    every: [`@th,64,8 ${CLIENT_TYPES} log prefix "${DHCP6_LOG_PREFIX}" group ${DHCP6_LOG_GROUP}`, ...acceptOnly],
  };
  const setVariant = (name: string) =>
    nft(
      [
        `flush chain bridge ${TABLE} dhcp6_client_message`,
        ...(variants[name] ?? []).map((r) => `add rule bridge ${TABLE} dhcp6_client_message ${r}`),
      ].join("\n"),
      {
        netns: host.name,
      },
    );

  echo = startDaemon("/usr/bin/python3", ["-c", ECHO_SERVER], { netns: router.name });
  const routerLinkLocal = `${eui64LinkLocal(ROUTER_MAC)}%eth0`;
  const solicit = `01000001000100${"0a"}00030001${GUEST_MAC.replaceAll(":", "")}`;
  let copies = 0;
  const reader = openNflog({ group: DHCP6_LOG_GROUP, netns: host.name }, (packets) => {
    copies += packets.length;
  });
  await new Promise((resolve) => setTimeout(resolve, 500));

  const samples = new Map<string, number[]>();
  const add = (key: string, values: number[]) => samples.set(key, [...(samples.get(key) ?? []), ...values]);
  const copiesBy = new Map<string, number>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const variant of Object.keys(variants)) {
      await setVariant(variant);
      const before = copies;
      for (const [flow, sport, payload] of [
        ["udp/547", "546", solicit],
        ["udp/9000", "9001", "00".repeat(20)],
      ] as const) {
        const { stdout } = await guest.exec("/usr/bin/python3", ["-c", PROBE, routerLinkLocal, sport, String(SAMPLES), payload], {
          timeoutMs: 300_000,
        });
        add(
          `${variant} ${flow}`,
          stdout
            .trim()
            .split(" ")
            .filter(Boolean)
            .map((ns) => Number(ns) / 1000),
        );
      }
      const ping = await guest.exec("ping", ["-6", "-n", "-c", String(SAMPLES), "-i", "0.001", routerLinkLocal], { timeoutMs: 300_000 });
      add(
        `${variant} icmpv6`,
        [...ping.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000),
      );
      copiesBy.set(variant, (copiesBy.get(variant) ?? 0) + copies - before);
    }
  }
  reader.close();

  const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
  console.log(`RTT through the bridge, µs (${ROUNDS} rounds x ${SAMPLES} samples per variant and flow; NFLOG copies taken per variant)`);
  console.log("variant  flow       p50     p90     p99    mean   samples  copies");
  for (const [key, values] of samples) {
    const sorted = [...values].sort((a, b) => a - b);
    const mean = values.reduce((s, v) => s + v, 0) / values.length;
    const [variant, flow] = key.split(" ") as [string, string];
    const cells = [pct(sorted, 50), pct(sorted, 90), pct(sorted, 99), mean].map((v) => v.toFixed(1).padStart(7));
    console.log(
      `${variant.padEnd(8)} ${flow.padEnd(9)} ${cells.join(" ")} ${String(values.length).padStart(8)} ${flow === "udp/547" ? String(copiesBy.get(variant)).padStart(7) : ""}`,
    );
  }
} finally {
  await echo?.stop();
  await router.destroy();
  await guest.destroy();
  await host.destroy();
}

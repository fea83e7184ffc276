import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { duidLl, eui64LinkLocal, type InterfaceName, type Mac, parseIpv6Network } from "../../../../src/addressing/index.js";
import { Router } from "../../../../src/lab/router.js";
import { Netns } from "../../../support/netns.js";
import { until } from "../../../support/wait.js";
import { GuestMachine } from "./guest-machine.js";

export const NETWORK = parseIpv6Network("2001:db8:60:1::/64");
export const GATEWAY = "2001:db8:60:1::1";
export const RESERVED = "2001:db8:60:1::a";
/** The router's port towards the guest. */
const ROUTER_PORT = "r0";

/**
 * One guest against the lab's router (src/lab/router.ts: dnsmasq sending RAs with the M flag and
 * answering DHCPv6 only for the DUID-LL reservation of the guest's MAC).
 */
export interface WireLab {
  router: Netns;
  dnsmasq: Router;
  guest: GuestMachine;
  /** The router port's link-local address: the gateway of a default route learnt from its RAs. */
  routerLinkLocal: string;
  /** Stops the guest, the router and deletes every namespace and file. */
  stop(): Promise<void>;
}

export async function startWireLab(nic: InterfaceName, mac: Mac): Promise<WireLab> {
  const workDir = await mkdtemp(join(tmpdir(), "v6agent-guestos-"));
  const router = await Netns.create("gosr");
  let dnsmasq: Router | undefined;
  let guest: GuestMachine | undefined;
  const stop = async () => {
    await guest?.shutdown();
    await dnsmasq?.stop();
    await router.destroy();
    await rm(workDir, { recursive: true, force: true });
  };
  try {
    await mkdir(join(workDir, "router"));
    await mkdir(join(workDir, "guest"));
    guest = await GuestMachine.create({ router, routerPort: ROUTER_PORT, nic, mac, workDir: join(workDir, "guest") });
    dnsmasq = await Router.start({
      netns: router,
      interface: ROUTER_PORT,
      network: NETWORK,
      gateway: GATEWAY,
      workDir: join(workDir, "router"),
      reservations: [{ mac, address: RESERVED }],
      raIntervalSeconds: 3,
    });
    const routerLinkLocal = await until(async () => {
      const links = await router.ipJson<{ addr_info: { local: string; scope: string }[] }[]>(["-6", "addr", "show", "dev", ROUTER_PORT]);
      return links[0]?.addr_info.find((info) => info.scope === "link")?.local;
    }, "the router port's link-local address");
    return { router, dnsmasq, guest, routerLinkLocal, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Scapy (Debian's python3) sends one Router Solicitation from the guest's NIC: argv iface, MAC, link-local. */
const SEND_RS = `import sys
from scapy.all import Ether, IPv6, ICMPv6ND_RS, ICMPv6NDOptSrcLLAddr, sendp
iface, mac, ll = sys.argv[1:4]
sendp(Ether(src=mac, dst="33:33:00:00:00:02") / IPv6(src=ll, dst="ff02::2", hlim=255) / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=mac), iface=iface, verbose=False)
`;

/**
 * Makes the router advertise now (dnsmasq answers every RS), whatever the guest OS itself does:
 * the RS comes from the guest's NIC, though not from its OS (which may well send none, with RAs
 * turned off). dnsmasq's own unsolicited RAs come only every 5-20 s in its first minute.
 */
export async function solicitRouterAdvertisement(lab: WireLab): Promise<void> {
  const { nic, mac } = lab.guest.options;
  await lab.guest.netns.exec("/usr/bin/python3", ["-c", SEND_RS, nic, mac, eui64LinkLocal(mac)]);
}

/** How tcpdump -vv prints the client identifier option of a DUID-LL made from `mac`. */
export function duidLlOnWire(mac: Mac): string {
  return `client-ID hwaddr type 1 ${mac.replaceAll(":", "")}`;
}

export interface Capture {
  /** Resolves with tcpdump's -vv text of the captured packet(s). */
  readonly packets: Promise<string>;
  stop(): void;
}

/**
 * tcpdump on the router's port for the first DHCPv6 Solicit (UDP to port 547 whose first payload
 * byte, the message type, is 1). Resolves once tcpdump is listening, so not even a client's first
 * Solicit can slip past.
 */
export async function captureSolicit(lab: WireLab, timeoutMs = 60_000): Promise<Capture> {
  const argv = ["netns", "exec", lab.router.name, "tcpdump", "-n", "-l", "-vv", "-c", "1", "-i", ROUTER_PORT];
  const child = spawn("ip", [...argv, "udp dst port 547 and ip6[48] == 1"], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString("utf8");
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const packets = new Promise<string>((resolve, reject) => {
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (code === 0 && stdout.includes("dhcp6 solicit")) resolve(stdout);
      else reject(new Error(`no DHCPv6 Solicit reached the router within ${timeoutMs} ms: ${stderr.trim()} ${stdout.trim()}`));
    });
  });
  packets.catch(() => undefined);
  await new Promise<void>((resolve, reject) => {
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
      if (stderr.includes("listening on")) resolve();
    });
    child.on("exit", () => reject(new Error(`tcpdump did not start: ${stderr.trim()}`)));
  });
  return { packets, stop: () => child.kill("SIGKILL") };
}

/** The client identifier tcpdump decoded from a Solicit, e.g. `client-ID hwaddr type 1 525400123456`. */
export function clientIdOf(solicitText: string): string | undefined {
  return /\((client-ID [^)]*)\)/.exec(solicitText)?.[1];
}

/** The DUID the router leased `address` to, from dnsmasq's lease file. */
export function leaseDuid(lab: WireLab, address: string): string | undefined {
  return lab.dnsmasq.leases().find((lease) => lease.address === address)?.duid;
}

export { duidLl };

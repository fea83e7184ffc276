import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eui64LinkLocal, type Mac, parseIpv6Address, parseIpv6Network, parseMac } from "../../../src/addressing/index.js";
import { createFirewall } from "../../../src/firewall/index.js";
import type { Firewall, GuestPort, ManagedBridge, PortCounters, RouterPolicy } from "../../../src/firewall/model.js";
import { expand } from "../../../src/firewall/validate.js";
import { NetnsGuest } from "../../../src/lab/guest-netns.js";
import { uniqueSuffix } from "../../../src/lab/names.js";
import { Netns, vethBetween } from "../../../src/lab/netns.js";
import { Router } from "../../../src/lab/router.js";

/**
 * One real "host" for the attack tests: a bridge in its own namespace, a dnsmasq router behind
 * the trusted port, and two dhclient guests (a victim and an attacker), all protected by one
 * backend. With `uplinkSwitch`, the trusted port leads to a switch (a bridge in a namespace of
 * its own) where the router sits next to a second, rogue, "router" namespace: the uplink of a
 * real shared network, which carries other hosts' traffic too.
 */
export const network = parseIpv6Network("2001:db8:1:1::/64");
export const gateway = "2001:db8:1:1::1";
export const victimMac = parseMac("52:54:00:00:10:0a");
export const attackerMac = parseMac("52:54:00:00:10:0b");
export const victimAddress = "2001:db8:1:1::10";
export const attackerAddress = "2001:db8:1:1::11";

export interface AttackHostOptions {
  backend: "nft" | "xtables";
  uplinkSwitch?: boolean;
}

export class AttackHost {
  readonly sfx = uniqueSuffix();
  readonly bridge = `fb${this.sfx}`;
  readonly routerPort = `fr${this.sfx}`;
  readonly victimPort = `gv${this.sfx}`;
  readonly attackerPort = `ga${this.sfx}`;
  host!: Netns;
  routerNs!: Netns;
  /** With `uplinkSwitch`: the switch and the rogue router's namespace on it. */
  switchNs: Netns | undefined;
  rogueNs: Netns | undefined;
  router!: Router;
  victim!: NetnsGuest;
  attacker!: NetnsGuest;
  firewall!: Firewall;
  routerMac!: Mac;
  routerLinkLocal!: string;
  workDir = mkdtempSync(join(tmpdir(), "v6fw-"));

  constructor(readonly options: AttackHostOptions) {}

  port(device: string, mac: Mac, address: string): GuestPort {
    return {
      device,
      bridge: this.bridge,
      mac,
      linkLocals: [eui64LinkLocal(mac)],
      ipv6: [address],
      ipv4: [],
      network: network.cidr,
    } as unknown as GuestPort;
  }

  managedBridge(router?: RouterPolicy): ManagedBridge {
    return {
      name: this.bridge,
      trustedPorts: [this.routerPort],
      guestPortPatterns: ["g*"],
      ...(router === undefined ? {} : { router }),
    } as ManagedBridge;
  }

  /** The router policy naming this host's router (M flag and the network's /64 required). */
  routerPolicy(): RouterPolicy {
    return { mac: this.routerMac, linkLocal: this.routerLinkLocal, requireManagedFlag: true, prefix: network.cidr } as RouterPolicy;
  }

  async start(): Promise<this> {
    this.host = await Netns.create("fwh");
    this.routerNs = await Netns.create("fwr");
    await this.host.exec("ip", ["link", "add", this.bridge, "type", "bridge"]);
    await this.host.exec("ip", ["link", "set", this.bridge, "up"]);
    this.firewall = await createFirewall({ backend: this.options.backend, netns: this.host.name });
    await this.firewall.reconcile({
      bridges: [this.managedBridge()],
      ports: [this.port(this.victimPort, victimMac, victimAddress), this.port(this.attackerPort, attackerMac, attackerAddress)],
    });
    if (this.options.uplinkSwitch) {
      const sw = await Netns.create("fws");
      this.switchNs = sw;
      this.rogueNs = await Netns.create("fwx");
      await sw.exec("ip", ["link", "add", "sw0", "type", "bridge"]);
      await sw.exec("ip", ["link", "set", "sw0", "up"]);
      await vethBetween(this.host, this.routerPort, sw, "up0");
      await vethBetween(sw, "rt0", this.routerNs, "eth0");
      await vethBetween(sw, "rg0", this.rogueNs, "eth0");
      for (const port of ["up0", "rt0", "rg0"]) await sw.exec("ip", ["link", "set", port, "master", "sw0"]);
    } else {
      await vethBetween(this.host, this.routerPort, this.routerNs, "eth0");
    }
    await this.host.exec("ip", ["link", "set", this.routerPort, "master", this.bridge]);
    this.routerMac = parseMac((await this.routerNs.ipJson<{ address: string }[]>(["link", "show", "eth0"]))[0]?.address);
    this.routerLinkLocal = eui64LinkLocal(this.routerMac);
    this.router = await Router.start({
      netns: this.routerNs,
      interface: "eth0",
      network,
      gateway,
      workDir: this.workDir,
      reservations: [
        { mac: victimMac, address: victimAddress },
        { mac: attackerMac, address: attackerAddress },
      ],
    });
    this.victim = await NetnsGuest.create({
      mac: victimMac,
      host: this.host,
      port: this.victimPort,
      bridge: this.bridge,
      workDir: this.workDir,
      prefix: "fwv",
    });
    this.attacker = await NetnsGuest.create({
      mac: attackerMac,
      host: this.host,
      port: this.attackerPort,
      bridge: this.bridge,
      workDir: this.workDir,
      prefix: "fwa",
    });
    return this;
  }

  async destroy(): Promise<void> {
    await this.victim?.destroy();
    await this.attacker?.destroy();
    await this.router?.stop();
    for (const ns of [this.rogueNs, this.switchNs, this.routerNs, this.host]) await ns?.destroy();
    rmSync(this.workDir, { recursive: true, force: true });
  }

  async countersOf(device: string): Promise<PortCounters> {
    const found = (await this.firewall.counters()).find((c) => c.device === device);
    if (found === undefined) throw new Error(`no counters for ${device}`);
    return found;
  }

  /** The bridge's FDB: MAC → the port it was learned on (entries the bridge learned, not its own). */
  async fdb(): Promise<Map<string, string>> {
    const { stdout } = await this.host.exec("bridge", ["-json", "fdb", "show", "br", this.bridge]);
    const rows = JSON.parse(stdout.trim() === "" ? "[]" : stdout) as { mac: string; ifname: string; state?: string }[];
    return new Map(rows.filter((r) => r.state !== "permanent").map((r) => [r.mac, r.ifname]));
  }

  /** The bridge's MDB: group entries (port, group) and the ports it takes for multicast routers. */
  async mdb(): Promise<{ groups: { port: string; group: string }[]; routers: string[] }> {
    const { stdout } = await this.host.exec("bridge", ["-json", "-d", "mdb", "show", "dev", this.bridge]);
    // `[{"mdb":[{"port":"v0","grp":"ff02::1:ff00:10",...}],"router":{"<bridge>":[{"port":"v0"}]}}]`
    const parsed = JSON.parse(stdout.trim() === "" ? "[]" : stdout) as {
      mdb?: { port: string; grp: string }[];
      router?: Record<string, { port: string }[]>;
    }[];
    const groups = parsed.flatMap((entry) => (entry.mdb ?? []).map((m) => ({ port: m.port, group: m.grp })));
    const routers = parsed.flatMap((entry) => Object.values(entry.router ?? {}).flatMap((ports) => ports.map((p) => p.port)));
    return { groups, routers };
  }
}

/** Polls `condition` every 200 ms until it holds or `timeoutMs` passes (then throws). */
export async function waitFor(condition: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The solicited-node multicast group of an address (RFC 4291 §2.7.1). */
export function solicitedNode(address: string): string {
  const low = expand(address).slice(6).join("");
  return parseIpv6Address(`ff02::1:ff${low.slice(2, 4)}:${low.slice(4, 8)}`);
}

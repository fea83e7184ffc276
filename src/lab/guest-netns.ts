import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Mac } from "../addressing/index.js";
import { V6Error } from "../errors.js";
import { Netns, vethBetween } from "./netns.js";

export interface NetnsGuestConfig {
  /** Prefix of the guest's namespace name (a unique suffix is added). */
  prefix?: string;
  mac: Mac;
  /** The namespace that plays the hypervisor host: the guest's port appears there. */
  host: Netns;
  /** The host-side device, the guest's "tap" (≤ 15 bytes). */
  port: string;
  /** Bridge in `host` to enslave the port to; omit to leave the port unattached. */
  bridge?: string;
  /** A directory of the caller's for dhclient's lease, pid and config files. */
  workDir: string;
}

export interface InterfaceAddress {
  address: string;
  prefixLength: number;
  scope: string;
  tentative: boolean;
}

export interface Route {
  destination: string;
  gateway?: string;
  device: string;
}

export interface Neighbour {
  address: string;
  mac?: string;
  state: string[];
}

/** Name of the guest's NIC inside its namespace. */
export const GUEST_NIC = "eth0";

/**
 * A guest played by a network namespace: one NIC with the VM's MAC whose host side is a port
 * on the host's bridge, and the real ISC dhclient asking for its address by DUID-LL
 * (`dhclient -6 -D LL`), as the seed tells guests to.
 */
export class NetnsGuest {
  private constructor(
    readonly netns: Netns,
    readonly config: NetnsGuestConfig,
  ) {}

  static async create(config: NetnsGuestConfig): Promise<NetnsGuest> {
    const netns = await Netns.create(config.prefix ?? "v6g");
    try {
      await vethBetween(config.host, config.port, netns, GUEST_NIC, { macB: config.mac });
      if (config.bridge !== undefined) {
        await config.host.exec("ip", ["link", "set", config.port, "master", config.bridge]);
      }
      // The host side of a guest port never takes part in IPv6 itself.
      await config.host.sysctl(`net.ipv6.conf.${config.port}.disable_ipv6`, "1");
    } catch (error) {
      await netns.destroy();
      throw error;
    }
    return new NetnsGuest(netns, config);
  }

  /**
   * A guest whose namespace and NIC someone else made (the XAPI simulator's dom0 plugs the VIF
   * into it): only dhclient and the queries are ours. `destroy()` still deletes the namespace.
   */
  static adopt(netns: Netns, config: NetnsGuestConfig): NetnsGuest {
    return new NetnsGuest(netns, config);
  }

  /** The pid of the background dhclient, if one runs. */
  dhclientPid(): number | undefined {
    try {
      const pid = Number(readFileSync(this.files().pid, "utf8").trim());
      return Number.isInteger(pid) && pid > 1 ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** Stops the background dhclient, if one runs, leaving the addresses it configured. */
  stopDhclient(): void {
    try {
      const pid = Number(readFileSync(this.files().pid, "utf8").trim());
      if (Number.isInteger(pid) && pid > 1) process.kill(pid, "SIGTERM");
    } catch {
      // never ran or gone
    }
  }

  get name(): string {
    return this.netns.name;
  }

  /** The guest NIC's IPv6 addresses. */
  async addresses(): Promise<InterfaceAddress[]> {
    const links = await this.netns.ipJson<{ addr_info?: Record<string, unknown>[] }[]>(["-6", "addr", "show", "dev", GUEST_NIC]);
    return (links[0]?.addr_info ?? []).map((info) => ({
      address: String(info.local),
      prefixLength: Number(info.prefixlen),
      scope: String(info.scope),
      tentative: info.tentative === true,
    }));
  }

  async globalAddresses(): Promise<string[]> {
    return (await this.addresses()).filter((a) => a.scope === "global" && !a.tentative).map((a) => a.address);
  }

  /** Waits until the kernel's link-local address on the NIC has passed DAD. */
  async waitForLinkLocal(timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const linkLocal = (await this.addresses()).find((a) => a.scope === "link" && !a.tentative);
      if (linkLocal !== undefined) return linkLocal.address;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new V6Error("timeout", `guest ${this.name}: no usable link-local address after ${timeoutMs} ms`);
  }

  /**
   * Runs `dhclient -6 -D LL` once and returns the global addresses the NIC then holds. dhclient
   * forks into the background once bound and keeps renewing; `destroy()` stops it.
   */
  async requestAddress(timeoutSeconds = 30): Promise<string[]> {
    await this.waitForLinkLocal();
    const files = this.files();
    writeFileSync(files.config, `timeout ${timeoutSeconds};\nretry 1;\n`);
    await this.netns.exec(
      "dhclient",
      ["-6", "-D", "LL", "-1", "-v", "-cf", files.config, "-lf", files.leases, "-pf", files.pid, GUEST_NIC],
      { timeoutMs: (timeoutSeconds + 15) * 1000 },
    );
    // dhclient-script adds the address as soon as it is bound; DAD then takes about a second.
    return this.waitForGlobalAddresses(5000);
  }

  /**
   * Starts dhclient -6 the way a guest left unconfigured runs it: without `-D LL`, so with the
   * DUID-LLT it makes itself. It stays in the background (-nw), soliciting; `destroy()` stops it.
   */
  async startDefaultDhclient(): Promise<void> {
    await this.waitForLinkLocal();
    const files = this.files();
    writeFileSync(files.config, "");
    await this.netns.exec("dhclient", ["-6", "-nw", "-v", "-cf", files.config, "-lf", files.leases, "-pf", files.pid, GUEST_NIC]);
  }

  /** Waits until no global address is tentative any more, and returns them. */
  async waitForGlobalAddresses(timeoutMs: number): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const global = (await this.addresses()).filter((a) => a.scope === "global");
      if (global.every((a) => !a.tentative) || Date.now() > deadline) {
        return global.filter((a) => !a.tentative).map((a) => a.address);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** The guest's IPv6 routes (the default route comes from the router's RA). */
  async routes(): Promise<Route[]> {
    const routes = await this.netns.ipJson<{ dst: string; gateway?: string; dev: string }[]>(["-6", "route", "show"]);
    return routes.map((r) => ({ destination: r.dst, device: r.dev, gateway: r.gateway }));
  }

  async defaultRoutes(): Promise<Route[]> {
    return (await this.routes()).filter((r) => r.destination === "default");
  }

  async neighbours(): Promise<Neighbour[]> {
    const entries = await this.netns.ipJson<{ dst: string; lladdr?: string; state?: string[] }[]>([
      "-6",
      "neigh",
      "show",
      "dev",
      GUEST_NIC,
    ]);
    return entries.map((e) => ({ address: e.dst, state: e.state ?? [], mac: e.lladdr }));
  }

  /** Stops dhclient (if it ran) and deletes the namespace; the host-side port goes with it. */
  async destroy(): Promise<void> {
    const files = this.files();
    try {
      const pid = Number(readFileSync(files.pid, "utf8").trim());
      if (Number.isInteger(pid) && pid > 1) process.kill(pid, "SIGTERM");
    } catch {
      // dhclient never ran or is gone
    }
    await this.netns.destroy();
    for (const path of Object.values(files)) rmSync(path, { force: true });
  }

  private files() {
    const base = join(this.config.workDir, `dhclient-${this.netns.name}`);
    return { config: `${base}.conf`, leases: `${base}.leases`, pid: `${base}.pid` };
  }
}

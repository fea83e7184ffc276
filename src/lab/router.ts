import { closeSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { dhcpHostLine, type Ipv6Network, type Mac, parseAddressInNetwork } from "../addressing/index.js";
import { V6Error } from "../errors.js";
import { type DaemonHandle, startDaemon } from "../exec.js";
import type { Netns } from "./netns.js";

/** One DHCPv6 reservation: the guest whose DUID-LL derives from `mac` gets `address`. */
export interface Reservation {
  mac: Mac;
  address: string;
}

export interface RouterConfig {
  /** The router's namespace; `interface` inside it is already up and on the guest network. */
  netns: Netns;
  interface: string;
  network: Ipv6Network;
  /** The router's own address inside the /64 (the guests' DHCPv6 server and default gateway). */
  gateway: string;
  /** A directory of the caller's where dnsmasq keeps its hosts file, leases, log and pid. */
  workDir: string;
  reservations?: readonly Reservation[];
  /** Seconds between unsolicited RAs (dnsmasq also answers every RS at once). Default 10. */
  raIntervalSeconds?: number;
  /** Router lifetime advertised in RAs, in seconds. Default 600. */
  routerLifetimeSeconds?: number;
  /** dnsmasq in its own process group, so it can outlive the caller (`v6agent lab --keep`). */
  detached?: boolean;
}

export interface Lease {
  /** The client DUID as colon hex, e.g. `00:03:00:01:52:54:00:12:34:56`. */
  duid: string;
  address: string;
  /** Unix time in seconds. */
  expires: number;
}

/**
 * The virtual router of a shared network, as CloudStack's VR plays it: real dnsmasq sending RAs
 * with the M flag and answering DHCPv6 only for reserved DUID-LLs (`static` mode: an unknown
 * client gets no address). Reservations change at run time: the hosts file is rewritten and
 * dnsmasq re-reads it on SIGHUP.
 */
export class Router {
  private constructor(
    private readonly config: RouterConfig,
    private readonly daemon: DaemonHandle,
    private reservations: Reservation[],
  ) {}

  static async start(config: RouterConfig): Promise<Router> {
    const gateway = parseAddressInNetwork(config.gateway, config.network, "gateway");
    const reservations = validateReservations(config.reservations ?? [], config.network);
    await config.netns.exec("ip", ["-6", "addr", "replace", `${gateway}/64`, "dev", config.interface, "nodad"]);
    // The router forwards in a real cloud; dnsmasq only needs the address, but a router that
    // advertises itself as the default gateway should also behave as one.
    await config.netns.sysctl("net.ipv6.conf.all.forwarding", "1");

    const paths = routerPaths(config.workDir);
    writeHostsFile(paths.hosts, reservations);
    writeFileSync(paths.leases, "");
    const logFd = openSync(paths.output, "a");
    const daemon = startDaemon(
      "dnsmasq",
      [
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        // No DNS: this dnsmasq is only the RA sender and the DHCPv6 server.
        "--port=0",
        // The lab keeps dnsmasq's files in a private directory, which the unprivileged
        // dnsmasq user could not re-read on SIGHUP.
        "--user=root",
        `--interface=${config.interface}`,
        "--enable-ra",
        `--ra-param=${config.interface},${config.raIntervalSeconds ?? 10},${config.routerLifetimeSeconds ?? 600}`,
        `--dhcp-range=${config.network.prefix},static,64,1h`,
        `--dhcp-hostsfile=${paths.hosts}`,
        `--dhcp-leasefile=${paths.leases}`,
        `--pid-file=${paths.pid}`,
        "--log-dhcp",
        `--log-facility=${paths.log}`,
      ],
      { netns: config.netns.name, outputFd: logFd, detached: config.detached === true },
    );
    closeSync(logFd);
    const router = new Router(config, daemon, reservations);
    await router.waitUntilListening();
    return router;
  }

  get pid(): number {
    return this.daemon.pid;
  }

  get logFile(): string {
    return routerPaths(this.config.workDir).log;
  }

  currentReservations(): readonly Reservation[] {
    return this.reservations;
  }

  /** Replaces the reservation list and makes dnsmasq re-read it. */
  async setReservations(reservations: readonly Reservation[]): Promise<void> {
    this.reservations = validateReservations(reservations, this.config.network);
    writeHostsFile(routerPaths(this.config.workDir).hosts, this.reservations);
    this.daemon.signal("SIGHUP");
  }

  /** Adds or replaces (by MAC) one reservation. */
  async reserve(reservation: Reservation): Promise<void> {
    await this.setReservations([...this.reservations.filter((r) => r.mac !== reservation.mac), reservation]);
  }

  /** The leases dnsmasq has handed out (its lease file). */
  leases(): Lease[] {
    const text = readFileSync(routerPaths(this.config.workDir).leases, "utf8");
    const leases: Lease[] = [];
    for (const line of text.split("\n")) {
      // IPv6 lines: <expiry> <iaid> <address> <hostname|*> <client-duid>; "duid <server>" first.
      const fields = line.trim().split(/\s+/);
      if (fields.length < 5 || fields[0] === "duid" || !(fields[2] as string).includes(":")) continue;
      leases.push({ expires: Number(fields[0]), address: fields[2] as string, duid: fields[4] as string });
    }
    return leases;
  }

  async stop(): Promise<void> {
    await this.daemon.stop();
  }

  /** Lets the caller exit while dnsmasq keeps serving (with `detached`). */
  unref(): void {
    this.daemon.unref();
  }

  /** dnsmasq is ready once it has written its pid file; fail early with its log if it died. */
  private async waitUntilListening(): Promise<void> {
    const paths = routerPaths(this.config.workDir);
    const deadline = Date.now() + 10_000;
    let exited = false;
    void this.daemon.exited.then(() => {
      exited = true;
    });
    while (Date.now() < deadline) {
      if (exited) break;
      try {
        if (readFileSync(paths.pid, "utf8").trim() !== "") return;
      } catch {
        // not written yet
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await this.daemon.stop();
    let output = "";
    try {
      output = readFileSync(paths.output, "utf8") + readFileSync(paths.log, "utf8");
    } catch {
      // no log yet
    }
    throw new V6Error("host_failure", `dnsmasq did not start in namespace ${this.config.netns.name}: ${output.trim().slice(-1000)}`);
  }
}

function routerPaths(workDir: string) {
  return {
    hosts: join(workDir, "dhcp-hosts"),
    leases: join(workDir, "dnsmasq.leases"),
    pid: join(workDir, "dnsmasq.pid"),
    log: join(workDir, "dnsmasq.log"),
    output: join(workDir, "dnsmasq.out"),
  };
}

function validateReservations(reservations: readonly Reservation[], network: Ipv6Network): Reservation[] {
  return reservations.map((reservation, index) => ({
    mac: reservation.mac,
    address: parseAddressInNetwork(reservation.address, network, `reservations[${index}].address`),
  }));
}

/** Atomic rewrite: dnsmasq may re-read the file at any moment. */
function writeHostsFile(path: string, reservations: readonly Reservation[]): void {
  // dhcp-hostsfile lines are dhcp-host values without the option name.
  const lines = reservations.map((r) => dhcpHostLine(r.mac, r.address).slice("dhcp-host=".length));
  const temporary = `${path}.tmp`;
  writeFileSync(temporary, lines.length === 0 ? "" : `${lines.join("\n")}\n`);
  renameSync(temporary, path);
}

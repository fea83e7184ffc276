import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { InterfaceName, Mac } from "../../../../src/addressing/index.js";
import { type RunOptions, type RunResult, run } from "../../../../src/exec.js";
import type { GuestFile } from "../../../../src/guestconfig/index.js";
import { Netns, vethBetween } from "../../../support/netns.js";
import { until } from "../../../support/wait.js";

/** The daemons a booted guest OS runs before anyone logs in, started in this order. */
export type GuestService = "netplan-generator" | "dbus" | "systemd-networkd" | "NetworkManager";

export interface GuestMachineOptions {
  /** The router's namespace; the guest's NIC is the far end of a veth from `routerPort` in it. */
  router: Netns;
  routerPort: string;
  nic: InterfaceName;
  mac: Mac;
  /** A directory of the caller's; the guest's /etc and /var/lib changes and daemon logs go here. */
  workDir: string;
}

/**
 * The boot script, run as PID 1 of the guest's own mount, UTS and PID namespaces (inside its
 * network namespace). /etc and /var/lib become overlays of the host's: the guest OS sees the
 * Debian files plus those the test installed, and everything it writes lands in the test's
 * directory — the host's own /etc (its /etc/network/interfaces, /etc/dhcp) is never written.
 * /run starts empty, as after a boot. A read-only /sys is how a container tells networkd and
 * NetworkManager that no udev runs, so they do not wait for one; what udev's 99-systemd.rules runs
 * when the NIC appears (systemd-sysctl for that NIC's keys: a sysctl.d file for it applies) runs
 * here. Then, in boot order: netplan's systemd generator (netplan generate), and the daemons as
 * their systemd units start them (networkd's RuntimeDirectory), logging into the test's directory.
 * The script then waits on stdin: when the test (or its process) goes away, PID 1 exits and the
 * kernel kills every process of the guest with it.
 */
const BOOT = `set -eu
root=$1; nic=$2; shift 2
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$root/etc,workdir=$root/etc.work" /etc
mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$root/var-lib,workdir=$root/var-lib.work" /var/lib
mount -t tmpfs tmpfs /run
mount -o remount,bind,ro /sys
/lib/systemd/systemd-sysctl --prefix="/net/ipv4/conf/$nic" --prefix="/net/ipv4/neigh/$nic" --prefix="/net/ipv6/conf/$nic" --prefix="/net/ipv6/neigh/$nic"
for service in "$@"; do
  case $service in
    netplan-generator) netplan generate ;;
    dbus) mkdir -p /run/dbus; dbus-daemon --system --fork ;;
    systemd-networkd)
      install -d -o systemd-network -g systemd-network /run/systemd/netif
      /lib/systemd/systemd-networkd >>"$root/systemd-networkd.log" 2>&1 & ;;
    NetworkManager) NetworkManager --no-daemon >>"$root/NetworkManager.log" 2>&1 & ;;
  esac
done
echo booted
read -r _ || true
`;

/**
 * A guest OS played by namespaces on this host: one NIC (the VM's MAC) cabled to the router,
 * the host's own Debian userland as its OS, the generated files installed where that OS reads
 * them, and its network daemons started as at boot. Commands run inside it with nsenter.
 */
export class GuestMachine {
  private init: ChildProcess | undefined;
  private initPid: number | undefined;

  private constructor(
    readonly netns: Netns,
    readonly options: GuestMachineOptions,
  ) {}

  static async create(options: GuestMachineOptions): Promise<GuestMachine> {
    const netns = await Netns.create("gos");
    try {
      await vethBetween(options.router, options.routerPort, netns, options.nic, { macB: options.mac });
      // The NIC starts down, as at boot: ifup, networkd or NetworkManager bring it up.
      await netns.exec("ip", ["link", "set", options.nic, "down"]);
      for (const dir of ["etc", "etc.work", "var-lib", "var-lib.work"]) await mkdir(join(options.workDir, dir), { recursive: true });
    } catch (error) {
      await netns.destroy();
      throw error;
    }
    return new GuestMachine(netns, options);
  }

  /**
   * Puts generated files where the guest OS reads them: into the /etc overlay, appending to the
   * host's own copy of the file when the renderer says append (as an operator would).
   */
  async install(files: readonly GuestFile[]): Promise<void> {
    for (const file of files) {
      if (!file.path.startsWith("/etc/")) throw new Error(`guest files live in /etc, not ${file.path}`);
      const upper = join(this.options.workDir, "etc", file.path.slice("/etc/".length));
      await mkdir(dirname(upper), { recursive: true });
      let content = file.content;
      if (file.append === true) {
        const existing = await readFile(upper, "utf8").catch(() => readFile(file.path, "utf8").catch(() => ""));
        content = `${existing}${existing === "" || existing.endsWith("\n") ? "" : "\n"}${file.content}`;
      }
      await writeFile(upper, content);
      if (file.mode !== undefined) await chmod(upper, Number.parseInt(file.mode, 8));
    }
  }

  /** Boots the guest's namespaces and starts `services`; resolves once the boot script is through. */
  async boot(services: readonly GuestService[] = []): Promise<void> {
    if (this.init !== undefined) throw new Error("the guest is already booted");
    const argv = [
      "netns",
      "exec",
      this.netns.name,
      "unshare",
      "--mount",
      "--uts",
      "--pid",
      "--kill-child",
      "--mount-proc",
      "--propagation",
      "private",
      "sh",
      "-c",
      BOOT,
      "boot",
      this.options.workDir,
      this.options.nic,
      ...services,
    ];
    const init = spawn("ip", argv, { stdio: ["pipe", "pipe", "pipe"] });
    this.init = init;
    await new Promise<void>((resolve, reject) => {
      let output = "";
      const collect = (chunk: Buffer) => {
        output += chunk.toString("utf8");
        if (output.includes("booted\n")) resolve();
      };
      init.stdout?.on("data", collect);
      init.stderr?.on("data", collect);
      init.on("exit", () => reject(new Error(`the guest's boot failed: ${output.trim()}`)));
    });
    // unshare (init.pid, after ip's exec) forked the guest's PID 1: the namespaces to enter.
    const unsharePid = init.pid as number;
    this.initPid = await until(async () => {
      const children = await readFile(`/proc/${unsharePid}/task/${unsharePid}/children`, "utf8").catch(() => "");
      const pid = Number(children.trim().split(/\s+/)[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    }, "the guest's PID 1");
  }

  /** Runs a command inside the booted guest (its mount, UTS, PID and network namespaces). */
  exec(argv: readonly string[], options: Omit<RunOptions, "netns"> = {}): Promise<RunResult> {
    if (this.initPid === undefined) throw new Error("boot the guest first");
    const [command, ...args] = argv;
    return run("nsenter", ["--target", String(this.initPid), "--mount", "--uts", "--pid", "--net", "--", command as string, ...args], {
      timeoutMs: 90_000,
      ...options,
    });
  }

  /** Brings the NIC up and waits until its link-local address has passed DAD (dhclient -6 needs it). */
  async nicUp(): Promise<void> {
    await this.netns.exec("ip", ["link", "set", this.options.nic, "up"]);
    await until(
      async () => (await this.addresses()).some((a) => a.scope === "link" && !a.tentative),
      `the link-local address on ${this.options.nic}`,
    );
  }

  async addresses(): Promise<{ address: string; scope: string; tentative: boolean }[]> {
    const links = await this.netns.ipJson<{ addr_info?: { local: string; scope: string; tentative?: boolean }[] }[]>([
      "-6",
      "addr",
      "show",
      "dev",
      this.options.nic,
    ]);
    return (links[0]?.addr_info ?? []).map((info) => ({ address: info.local, scope: info.scope, tentative: info.tentative === true }));
  }

  /** Waits until the NIC holds `address` as a usable (non-tentative) global address. */
  async waitForAddress(address: string, timeoutMs = 60_000): Promise<void> {
    await until(
      async () => (await this.addresses()).some((a) => a.address === address && a.scope === "global" && !a.tentative),
      `${address} on the guest's ${this.options.nic}`,
      timeoutMs,
      100,
    );
  }

  async defaultRoutes(): Promise<{ gateway?: string; dev: string }[]> {
    return this.netns.ipJson<{ gateway?: string; dev: string }[]>(["-6", "route", "show", "default"]);
  }

  /** How many Router Advertisements the NIC has received (the kernel's per-device counter). */
  async routerAdvertisementsReceived(): Promise<number> {
    const { stdout } = await this.netns.exec("cat", [`/proc/net/dev_snmp6/${this.options.nic}`]);
    const match = /^Icmp6InRouterAdvertisements\s+(\d+)$/m.exec(stdout);
    if (match === null) throw new Error(`no RA counter for ${this.options.nic}`);
    return Number(match[1]);
  }

  /** Kills the guest's PID 1 (and with it every process of the guest) and deletes its namespace. */
  async shutdown(): Promise<void> {
    const init = this.init;
    if (init !== undefined && init.exitCode === null && init.signalCode === null) {
      const gone = new Promise((resolve) => init.on("exit", resolve));
      // PID 1 of a PID namespace ignores signals it has no handler for, and unshare ignores
      // SIGTERM: SIGKILL to unshare, whose --kill-child then SIGKILLs the guest's PID 1.
      init.kill("SIGKILL");
      await gone;
    }
    const initPid = this.initPid;
    if (initPid !== undefined) await until(() => !existsSync(`/proc/${initPid}`), "the guest's PID 1 to go");
    await this.netns.destroy();
  }
}

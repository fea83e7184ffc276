import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { gzipSync } from "node:zlib";
import { V6Error } from "../errors.js";
import { run } from "../exec.js";
import { buildCpio, type CpioEntry } from "./cpio.js";

/**
 * A tiny test guest (design section 6): Debian's cloud kernel and an initramfs made of
 * busybox-static, dhclient with its libc and loader, and the virtio-net modules. Its init brings
 * every NIC up (hot-plugged ones too), and reports on the serial console, one line each:
 *
 *   V6GUEST boot
 *   V6GUEST ll <ifname> <link-local>          once the link-local address is no longer tentative
 *   V6GUEST addr <ifname> <address>           when dhclient -6 -D LL binds a DHCPv6 address
 *   V6GUEST global <ifname> <address>...      every global address on the NIC right after that
 *   V6GUEST net <ifname> addrs=<a,b|-> routers=<r,s|->
 *                                             every 2 s per NIC: its global addresses and the
 *                                             next hops of its default routes (from RAs)
 *
 * and then keeps running, so the VM can be stopped and started again.
 *
 * Rogue mode: with `v6agent.rogue=<prefix>::/64` on the kernel command line the guest plays a
 * rogue router on its first NIC (eth0): it gives itself `<prefix>::1`, runs no DHCP client there,
 * and runs a real dnsmasq sending RAs (M flag, router lifetime 1800 s, every 4 s) and answering
 * any DHCPv6 Solicit from `<prefix>::100`-`<prefix>::1ff`; dnsmasq logs to the console
 * (`dnsmasq...` lines) and the guest prints `V6GUEST rogue eth0 <prefix>::/64` once it starts.
 * The prefix must be written with a trailing `::` (e.g. 2001:db8:66::/64).
 *
 * DUID-LLT mode: with `v6agent.duid=llt` the guest runs dhclient without `-D LL`, so it sends the
 * DUID-LLT dhclient makes itself, as an unconfigured guest does (the lab's mismatching guest).
 */
export interface GuestImage {
  kernel: string;
  initrd: string;
  /** Kernel command line: serial console, quiet. */
  cmdline: string;
}

export const GUEST_CONSOLE_PREFIX = "V6GUEST";

/** virtio-net's module chain in modules.dep order (those built in are skipped). */
const MODULES = [
  "virtio_ring",
  "virtio",
  "virtio_pci_legacy_dev",
  "virtio_pci_modern_dev",
  "virtio_pci",
  "failover",
  "net_failover",
  "virtio_net",
];

const INIT = `#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for module in ${MODULES.join(" ")}; do
  [ -f /lib/modules/$module.ko ] && insmod /lib/modules/$module.ko
done
ip link set lo up
echo "${GUEST_CONSOLE_PREFIX} boot" > /dev/console
# v6agent.duid=llt: run dhclient with its own default DUID (a DUID-LLT) instead of -D LL.
duid_option="-D LL"
grep -q 'v6agent\\.duid=llt' /proc/cmdline && duid_option=""
rogue=$(sed -n 's/.*v6agent\\.rogue=\\([0-9a-fA-F:]*::\\)\\/64.*/\\1/p' /proc/cmdline)
report_network() {
  routes=$(ip -6 route show default 2>/dev/null | sed -n 's/.*via \\([^ ]*\\) dev \\([^ ]*\\).*/\\2 \\1/p')
  for path in /sys/class/net/eth*; do
    [ -e "$path" ] || continue
    nic=\${path##*/}
    addrs=$(ip -6 addr show dev "$nic" scope global 2>/dev/null | sed -n 's/.*inet6 \\([^/ ]*\\).*/\\1/p' | tr '\\n' ',')
    routers=$(echo "$routes" | sed -n "s/^$nic //p" | tr '\\n' ',')
    addrs=\${addrs%,}
    routers=\${routers%,}
    echo "${GUEST_CONSOLE_PREFIX} net $nic addrs=\${addrs:--} routers=\${routers:--}" > /dev/console
  done
}
start_rogue() {
  nic=$1
  echo 1 > /proc/sys/net/ipv6/conf/all/forwarding
  echo 0 > /proc/sys/net/ipv6/conf/$nic/accept_dad
  ip link set "$nic" up
  ip -6 addr add "\${rogue}1/64" dev "$nic"
  echo "${GUEST_CONSOLE_PREFIX} rogue $nic \${rogue}/64" > /dev/console
  exec dnsmasq --keep-in-foreground --log-facility=- --log-dhcp --user=root --group=root --port=0 \\
    --no-resolv --no-hosts --pid-file= --dhcp-leasefile=/var/lib/dhcp/rogue.leases \\
    --interface="$nic" --enable-ra --ra-param="$nic,4,1800" \\
    --dhcp-range="\${rogue}100,\${rogue}1ff,64,1h" > /dev/console 2>&1
}
seen=" "
tick=0
while true; do
  for path in /sys/class/net/eth*; do
    [ -e "$path" ] || continue
    nic=\${path##*/}
    case "$seen" in *" $nic "*) continue ;; esac
    seen="$seen$nic "
    if [ -n "$rogue" ] && [ "$nic" = eth0 ]; then
      start_rogue "$nic" &
      continue
    fi
    (
      ip link set "$nic" up
      tries=0
      while [ $tries -lt 100 ]; do
        line=$(ip -6 addr show dev "$nic" scope link | grep inet6)
        case "$line" in
          *tentative*|"") ;;
          *) break ;;
        esac
        tries=$((tries + 1))
        sleep 0.2
      done
      address=$(echo "$line" | sed -n 's/.*inet6 \\([^/ ]*\\).*/\\1/p')
      echo "${GUEST_CONSOLE_PREFIX} ll $nic $address" > /dev/console
      exec dhclient -6 $duid_option -d -q -cf /etc/dhclient.conf -sf /bin/dhclient-script \\
        -lf /var/lib/dhcp/$nic.leases -pf /run/dhclient6.$nic.pid "$nic" > /dev/null 2>&1
    ) &
  done
  tick=$((tick + 1))
  [ $((tick % 2)) -eq 0 ] && report_network
  sleep 1
done
`;

const DHCLIENT_SCRIPT = `#!/bin/sh
case "$reason" in
  BOUND6|RENEW6|REBIND6|REBOOT6)
    if [ -n "$new_ip6_address" ]; then
      ip -6 addr add "$new_ip6_address/$new_ip6_prefixlen" dev "$interface" 2>/dev/null
      echo "${GUEST_CONSOLE_PREFIX} addr $interface $new_ip6_address" > /dev/console
      globals=$(ip -6 addr show dev "$interface" scope global | sed -n 's/.*inet6 \\([^/ ]*\\).*/\\1/p' | tr '\\n' ' ')
      echo "${GUEST_CONSOLE_PREFIX} global $interface $globals" > /dev/console
    fi
    ;;
esac
exit 0
`;

function findKernel(): { kernel: string; version: string } {
  const kernels = readdirSync("/boot")
    .filter((name) => /^vmlinuz-.*-cloud-amd64$/.test(name))
    .sort();
  const name = kernels.at(-1);
  if (name === undefined) {
    throw new V6Error("host_failure", "no /boot/vmlinuz-*-cloud-amd64: install the Debian package linux-image-cloud-amd64");
  }
  return { kernel: join("/boot", name), version: name.slice("vmlinuz-".length) };
}

function modulePaths(version: string): string[] {
  const base = join("/lib/modules", version);
  const dependencies = readFileSync(join(base, "modules.dep"), "utf8").split("\n");
  const builtin = readFileSync(join(base, "modules.builtin"), "utf8");
  const paths: string[] = [];
  for (const module of MODULES) {
    const line = dependencies.find((entry) => entry.split(":")[0]?.endsWith(`/${module}.ko`));
    if (line !== undefined) paths.push(join(base, line.split(":")[0] as string));
    else if (!builtin.includes(`/${module}.ko`)) throw new V6Error("host_failure", `kernel ${version} has no module ${module}`);
  }
  return paths;
}

/** dhclient's shared libraries and loader, as ldd lists them. */
async function sharedLibraries(binary: string): Promise<string[]> {
  const { stdout } = await run("ldd", [binary]);
  const libraries: string[] = [];
  for (const line of stdout.split("\n")) {
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (match?.[1] !== undefined) libraries.push(match[1]);
  }
  return libraries;
}

function fingerprint(paths: readonly string[]): string {
  const hash = createHash("sha256").update(INIT).update(DHCLIENT_SCRIPT).update(MODULES.join(","));
  for (const path of paths) {
    const stat = statSync(path);
    hash.update(`${path}:${stat.size}:${stat.mtimeMs}\n`);
  }
  return hash.digest("hex").slice(0, 16);
}

/**
 * Builds (or reuses from `cacheDir`, keyed by every input's path, size and mtime) the guest
 * kernel and initramfs. The directory is world-readable: QEMU runs as libvirt-qemu.
 */
export async function buildGuestImage(options: { cacheDir?: string } = {}): Promise<GuestImage> {
  const { kernel, version } = findKernel();
  const busybox = "/bin/busybox";
  const dhclient = "/sbin/dhclient";
  const dnsmasq = "/usr/sbin/dnsmasq";
  for (const [path, pkg] of [
    [busybox, "busybox-static"],
    [dhclient, "isc-dhcp-client"],
    [dnsmasq, "dnsmasq-base"],
  ] as const) {
    if (!existsSync(path)) throw new V6Error("host_failure", `${path} is missing: install the Debian package ${pkg}`);
  }
  const libraries = [...new Set([...(await sharedLibraries(dhclient)), ...(await sharedLibraries(dnsmasq))])];
  const modules = modulePaths(version);
  const key = fingerprint([kernel, busybox, dhclient, dnsmasq, ...libraries, ...modules]);
  const root = options.cacheDir ?? join(tmpdir(), "v6agent-guest-images");
  const directory = join(root, key);
  const image: GuestImage = {
    kernel: join(directory, "vmlinuz"),
    initrd: join(directory, "initramfs.img"),
    cmdline: "console=ttyS0 quiet loglevel=3",
  };
  if (existsSync(image.kernel) && existsSync(image.initrd)) return image;

  const entries: CpioEntry[] = [];
  const directories = new Set<string>();
  const addDirectory = (path: string) => {
    const parts = path.split("/").filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join("/");
      if (!directories.has(prefix)) {
        directories.add(prefix);
        entries.push({ kind: "directory", path: prefix });
      }
    }
  };
  for (const path of ["bin", "sbin", "dev", "proc", "sys", "run", "etc", "var/lib/dhcp", "lib/modules"]) addDirectory(path);
  entries.push({ kind: "char-device", path: "dev/console", major: 5, minor: 1 });
  entries.push({ kind: "file", path: "bin/busybox", data: readFileSync(busybox), mode: 0o755 });
  const applets = ["sh", "mount", "insmod", "ip", "sleep", "sed", "grep", "tr", "cat", "echo", "ls", "ps", "poweroff"];
  for (const applet of applets) entries.push({ kind: "symlink", path: `bin/${applet}`, target: "busybox" });
  entries.push({ kind: "file", path: "bin/dhclient", data: readFileSync(dhclient), mode: 0o755 });
  entries.push({ kind: "file", path: "bin/dnsmasq", data: readFileSync(dnsmasq), mode: 0o755 });
  for (const library of libraries) {
    addDirectory(library.slice(0, library.lastIndexOf("/")));
    entries.push({ kind: "file", path: library, data: readFileSync(library), mode: 0o755 });
  }
  for (const module of modules) entries.push({ kind: "file", path: `lib/modules/${basename(module)}`, data: readFileSync(module) });
  entries.push({ kind: "file", path: "init", data: Buffer.from(INIT), mode: 0o755 });
  entries.push({ kind: "file", path: "bin/dhclient-script", data: Buffer.from(DHCLIENT_SCRIPT), mode: 0o755 });
  entries.push({ kind: "file", path: "etc/dhclient.conf", data: Buffer.alloc(0) });
  // dnsmasq looks its --user/--group up (glibc's built-in files NSS reads these).
  entries.push({ kind: "file", path: "etc/passwd", data: Buffer.from("root:x:0:0:root:/:/bin/sh\n") });
  entries.push({ kind: "file", path: "etc/group", data: Buffer.from("root:x:0:\n") });

  mkdirSync(directory, { recursive: true });
  for (const path of [root, directory]) chmodSync(path, 0o755);
  // Written under temporary names and renamed, so a concurrent build never sees half a file.
  const suffix = `.${process.pid}.tmp`;
  copyFileSync(kernel, image.kernel + suffix);
  writeFileSync(image.initrd + suffix, gzipSync(buildCpio(entries)));
  for (const path of [image.kernel, image.initrd]) {
    chmodSync(path + suffix, 0o644);
    renameSync(path + suffix, path);
  }
  return image;
}

export interface GuestConsole {
  boots: number;
  /** The link-local address each NIC reported. */
  linkLocal: Map<string, string>;
  /** Every DHCPv6 address each NIC bound, in order. */
  addresses: Map<string, string[]>;
  /** The global addresses each NIC had right after its last bind. */
  globals: Map<string, string[]>;
  /** Each NIC's latest periodic `net` line: global addresses and default routers now. */
  network: Map<string, GuestNetwork>;
  /** Every global address / default router any `net` line ever showed per NIC (to prove absence). */
  everAddresses: Map<string, Set<string>>;
  everRouters: Map<string, Set<string>>;
  /** NICs on which the guest started a rogue dnsmasq, with the prefix it serves. */
  rogue: Map<string, string>;
}

export interface GuestNetwork {
  addresses: string[];
  routers: string[];
}

function listValue(field: string | undefined, name: string): string[] {
  if (field === undefined || !field.startsWith(`${name}=`)) return [];
  const value = field.slice(name.length + 1);
  return value === "-" || value === "" ? [] : value.split(",");
}

/** Reads what the guest's init reported on its serial console. */
export function parseGuestConsole(text: string): GuestConsole {
  const result: GuestConsole = {
    boots: 0,
    linkLocal: new Map(),
    addresses: new Map(),
    globals: new Map(),
    network: new Map(),
    everAddresses: new Map(),
    everRouters: new Map(),
    rogue: new Map(),
  };
  const remember = (map: Map<string, Set<string>>, nic: string, values: string[]) => {
    const set = map.get(nic) ?? new Set<string>();
    for (const value of values) set.add(value);
    map.set(nic, set);
  };
  const lines = text.split(/\r?\n/);
  // The console is read while the guest writes: a last line without its newline may be cut
  // short (an address list missing its routers), so only complete lines count.
  lines.pop();
  for (const raw of lines) {
    const at = raw.indexOf(`${GUEST_CONSOLE_PREFIX} `);
    if (at < 0) continue;
    const [, kind, nic, ...values] = raw.slice(at).trim().split(/\s+/);
    if (kind === "boot") result.boots++;
    else if (kind === "ll" && nic !== undefined && values[0] !== undefined) result.linkLocal.set(nic, values[0]);
    else if (kind === "addr" && nic !== undefined && values[0] !== undefined) {
      result.addresses.set(nic, [...(result.addresses.get(nic) ?? []), values[0]]);
    } else if (kind === "global" && nic !== undefined) result.globals.set(nic, values);
    else if (kind === "net" && nic !== undefined) {
      const network = { addresses: listValue(values[0], "addrs"), routers: listValue(values[1], "routers") };
      result.network.set(nic, network);
      remember(result.everAddresses, nic, network.addresses);
      remember(result.everRouters, nic, network.routers);
    } else if (kind === "rogue" && nic !== undefined && values[0] !== undefined) result.rogue.set(nic, values[0]);
  }
  return result;
}

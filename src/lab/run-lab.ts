import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  duidLl,
  eui64LinkLocal,
  type Ipv6Network,
  type Mac,
  parseAddressInNetwork,
  parseIpv6Network,
  parseMac,
} from "../addressing/index.js";
import { V6Error } from "../errors.js";
import { type DaemonHandle, run } from "../exec.js";
import type { DropReason } from "../firewall/model.js";
import { XapiConnection } from "../hypervisor/xenserver/xapi-connection.js";
import type { VifReport } from "../protocol/schemas.js";
import { buildGuestImage } from "./guest-image.js";
import { NetnsGuest } from "./guest-netns.js";
import type { LabOptions } from "./lab-options.js";
import { CLI_PATH, startNodeChild, waitForJsonLine, XAPI_SIM_PATH } from "./lab-processes.js";
import { attackerCountersOk, guestOk, type LabGuestResult, type LabResult } from "./lab-result.js";
import { emptyLabRecord, LAB_DIR, LAB_PREFIX, type LabRecord, labRecordPath, writeLabRecord } from "./lab-state.js";
import { labDown } from "./lab-teardown.js";
import { ensureLibvirtd } from "./libvirtd.js";
import { MgmtClient } from "./mgmt-client.js";
import { Netns, vethBetween } from "./netns.js";
import { Router } from "./router.js";
import { VmConsole } from "./vm-console.js";

/** Reports each step as it starts and ends (the CLI draws the live line). */
export type LabProgress = (event: { step: string; status: "start" | "done" | "fail"; detail?: string }) => void;

export const LAB_NETWORK = "2001:db8:6c:1::/64";
export const LAB_ROUTER = "2001:db8:6c:1::1";
export const ROGUE_NETWORK = "2001:db8:bad:1::/64";
const HOST_ID = `${LAB_PREFIX}-host`;
const NETWORK_ID = `${LAB_PREFIX}-net`;

interface LabGuest {
  name: string;
  role: "victim" | "attacker";
  mac: Mac;
  expected: string;
}

/** The lab's guests: the last one is the attacker, the others its victims. */
export function labGuests(count: number): LabGuest[] {
  return Array.from({ length: count }, (_, index) => ({
    name: `${LAB_PREFIX}-g${index + 1}`,
    role: index === count - 1 ? "attacker" : "victim",
    mac: parseMac(`52:54:00:6c:00:${(index + 1).toString(16).padStart(2, "0")}`),
    expected: `2001:db8:6c:1::${(0x100 + index + 1).toString(16)}`,
  }));
}

/** Everything the running lab holds, so one teardown path serves success, failure and Ctrl-C. */
class LabSession {
  readonly record: LabRecord = emptyLabRecord();
  readonly daemons: DaemonHandle[] = [];
  readonly routers: Router[] = [];
  readonly namespaces: Netns[] = [];

  constructor(
    readonly dir: string,
    private readonly progress: LabProgress,
  ) {}

  save(): void {
    writeLabRecord(this.record, this.dir);
  }

  async step<T>(step: string, body: () => Promise<T>, detail?: (value: T) => string): Promise<T> {
    this.progress({ step, status: "start" });
    try {
      const value = await body();
      this.save();
      const text = detail?.(value);
      this.progress({ step, status: "done", ...(text === undefined ? {} : { detail: text }) });
      return value;
    } catch (error) {
      this.save();
      this.progress({ step, status: "fail", detail: (error as Error).message });
      throw error;
    }
  }

  async namespace(name: string): Promise<Netns> {
    this.record.namespaces.push(name);
    this.save();
    const netns = await Netns.createNamed(name);
    this.namespaces.push(netns);
    return netns;
  }

  child(name: string, script: string, args: readonly string[]): { handle: DaemonHandle; log: string } {
    const log = join(this.dir, `${name}.log`);
    const handle = startNodeChild(script, args, log);
    this.daemons.push(handle);
    this.record.pids.push({ name, pid: handle.pid });
    this.save();
    return { handle, log };
  }
}

/**
 * `v6agent lab`: the seed's sequence on this one machine with real processes over the real
 * channel — a management server and an agent daemon as child processes, a /64 made by
 * `network.ensure`, guests, a router namespace whose dnsmasq holds reservations built from the
 * agent's `vif.report`s, `dhclient -6 -D LL` in every guest, then a rogue RA and a rogue DHCPv6
 * server from the last guest, which the agent's rules drop at that guest's own port.
 */
export async function runLab(options: LabOptions, progress: LabProgress = () => {}): Promise<LabResult> {
  const dir = options.dir ?? LAB_DIR;
  // Even an unreadable record means a lab (or a half-removed one) is there.
  if (existsSync(labRecordPath(dir))) {
    throw new V6Error("conflict", `a lab is already up (${dir}/lab.json): run 'v6agent lab down' first`);
  }
  const started = Date.now();
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const session = new LabSession(dir, progress);
  session.record.firewall = { backend: options.backend, ...(options.hypervisor === "xenserver" ? { netns: HOST_ID } : {}) };
  session.save();
  let done = false;
  const interrupt = () => {
    if (!done) progress({ step: "interrupted: removing the lab", status: "fail" });
    void labDown(dir).finally(() => process.exit(130));
  };
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);
  try {
    const result =
      options.hypervisor === "xenserver" ? await runXenLab(session, options, started) : await runKvmLab(session, options, started);
    done = true;
    if (options.keep) {
      for (const daemon of session.daemons) daemon.unref();
      for (const router of session.routers) router.unref();
      for (const netns of session.namespaces) netns.release();
    } else {
      // Not a session step: the record it would save afterwards is what lab down just removed.
      progress({ step: "lab down", status: "start" });
      const summary = await labDown(dir);
      progress({
        step: "lab down",
        status: summary.problems.length === 0 ? "done" : "fail",
        detail: summary.problems.join("; ") || undefined,
      });
    }
    return result;
  } catch (error) {
    done = true;
    progress({ step: "removing the failed lab", status: "start" });
    await labDown(dir);
    progress({ step: "removing the failed lab", status: "done" });
    throw error;
  } finally {
    process.removeListener("SIGINT", interrupt);
    process.removeListener("SIGTERM", interrupt);
  }
}

/** The management server on free loopback ports with a fresh bearer token. */
async function startManagement(session: LabSession): Promise<{ mgmt: MgmtClient; agentsUrl: string; tokenFile: string }> {
  const tokenFile = join(session.dir, "token");
  writeFileSync(tokenFile, `${randomBytes(24).toString("hex")}\n`, { mode: 0o600 });
  const { handle, log } = session.child("mgmt", CLI_PATH, [
    "mgmt",
    "--listen",
    "127.0.0.1:0",
    "--api",
    "127.0.0.1:0",
    "--token-file",
    tokenFile,
    "--heartbeat-ms",
    "5000",
  ]);
  const endpoints = await waitForJsonLine<{ agents: string; api: string }>(handle, log, ["agents", "api"], "v6agent mgmt");
  return { mgmt: new MgmtClient(endpoints.api), agentsUrl: endpoints.agents, tokenFile };
}

function agentConfigYaml(fields: {
  agentsUrl: string;
  tokenFile: string;
  stateDir: string;
  backend: string;
  hypervisor: string[];
  uplink: string;
  netns?: string;
}): string {
  return [
    `hostId: ${HOST_ID}`,
    "management:",
    "  servers:",
    `    - ${JSON.stringify(fields.agentsUrl)}`,
    `  tokenFile: ${JSON.stringify(fields.tokenFile)}`,
    "  heartbeatSeconds: 5",
    "  timeoutSeconds: 20",
    "hypervisor:",
    ...fields.hypervisor.map((line) => `  ${line}`),
    "network:",
    `  uplink: ${fields.uplink}`,
    "firewall:",
    `  backend: ${fields.backend}`,
    `stateDir: ${JSON.stringify(fields.stateDir)}`,
    "logLevel: info",
    ...(fields.netns === undefined ? [] : [`netns: ${fields.netns}`]),
    "",
  ].join("\n");
}

/** The management server, the agent daemon registered with it, and the lab's /64 ensured through it. */
async function startAgentOnNetwork(
  session: LabSession,
  options: LabOptions,
  kind: "kvm" | "xenserver",
  host: { hypervisor: string[]; uplink: string; netns?: string },
) {
  const { mgmt, agentsUrl, tokenFile } = await session.step(
    "management server (v6agent mgmt)",
    () => startManagement(session),
    (value) => value.mgmt.apiUrl,
  );
  const yaml = agentConfigYaml({ agentsUrl, tokenFile, stateDir: join(session.dir, "state"), backend: options.backend, ...host });
  await session.step(`agent daemon (v6agent run, ${kind}, ${options.backend})`, () => startAgent(session, mgmt, yaml));
  const ensured = await session.step(
    `network.ensure ${LAB_NETWORK}`,
    () => mgmt.call(HOST_ID, "network.ensure", { networkId: NETWORK_ID, prefix: LAB_NETWORK, gateway: LAB_ROUTER }),
    (value) => `bridge ${value.bridge}`,
  );
  return { mgmt, ensured };
}

async function startAgent(session: LabSession, mgmt: MgmtClient, yaml: string): Promise<void> {
  const configPath = join(session.dir, "agent.yaml");
  writeFileSync(configPath, yaml, { mode: 0o600 });
  mkdirSync(join(session.dir, "state"), { recursive: true });
  const { handle, log } = session.child("agent", CLI_PATH, ["run", "--config", configPath]);
  let exited = false;
  void handle.exited.then(() => {
    exited = true;
  });
  const deadline = Date.now() + 60_000;
  while (!(await mgmt.agentConnected(HOST_ID).catch(() => false))) {
    if (exited || Date.now() > deadline) {
      throw new V6Error(
        "host_failure",
        `the lab's agent ${exited ? "exited" : "did not connect"}: ${readFileSync(log, "utf8").trim().slice(-1500)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function reservationsFrom(reports: Map<string, VifReport>, guests: readonly LabGuest[]) {
  return guests.map((guest) => {
    const report = reports.get(guest.mac) as VifReport;
    const address = report.ipv6?.[0];
    if (address === undefined) throw new V6Error("internal", `vif.report for ${guest.mac} carries no assigned address`);
    return { mac: parseMac(report.mac), address };
  });
}

async function diagnoseDrops(mgmt: MgmtClient): Promise<Map<string, { device?: string; drops: Partial<Record<DropReason, number>> }>> {
  const report = (await mgmt.call(HOST_ID, "host.diagnose", {})) as unknown as {
    vifs?: { mac: string; device?: string; drops?: Partial<Record<DropReason, number>> }[];
  };
  return new Map(
    (report.vifs ?? []).map((vif) => [vif.mac, { ...(vif.device === undefined ? {} : { device: vif.device }), drops: vif.drops ?? {} }]),
  );
}

/** Polls host.diagnose until the attacker's port shows RA and DHCPv6-server drops (or the time is up). */
async function waitForDrops(mgmt: MgmtClient, attacker: Mac, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const vifs = await diagnoseDrops(mgmt);
    const drops = vifs.get(attacker)?.drops ?? {};
    if (((drops.ra ?? 0) > 0 && (drops.dhcpv6Server ?? 0) > 0) || Date.now() > deadline) return vifs;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

// ------------------------------------------------------------------ XenServer (simulated dom0)

async function runXenLab(session: LabSession, options: LabOptions, started: number): Promise<LabResult> {
  const network = parseIpv6Network(LAB_NETWORK);
  const rogue = parseIpv6Network(ROGUE_NETWORK);
  const guests = labGuests(options.guests);
  const attacker = guests.at(-1) as LabGuest;
  const victims = guests.slice(0, -1);

  const guestNamespaces = new Map<string, Netns>();
  const { dom0, router } = await session.step("namespaces: dom0, router, guests", async () => {
    const dom0 = await session.namespace(HOST_ID);
    const router = await session.namespace(`${LAB_PREFIX}-rt`);
    // dom0's physical network: xenbr0 with eth0 (the management PIF) towards the router.
    await dom0.exec("ip", ["link", "add", "xenbr0", "type", "bridge"]);
    await dom0.exec("ip", ["link", "set", "xenbr0", "up"]);
    await vethBetween(dom0, "eth0", router, "eth0");
    await dom0.exec("ip", ["link", "set", "eth0", "master", "xenbr0"]);
    await dom0.sysctl("net.ipv6.conf.xenbr0.disable_ipv6", "1");
    for (const guest of guests) guestNamespaces.set(guest.name, await session.namespace(guest.name));
    return { dom0, router };
  });

  const sim = await session.step(
    "XAPI simulator (dom0 plays the VIFs)",
    async () => {
      const { handle, log } = session.child("xapi-sim", XAPI_SIM_PATH, [
        JSON.stringify({ dom0: dom0.name, vms: guests.map((guest) => ({ name: guest.name, guestNetns: guest.name })) }),
      ]);
      return waitForJsonLine<{ url: string; vms: { name: string; uuid: string }[] }>(handle, log, ["url", "vms"], "the XAPI simulator");
    },
    (value) => value.url,
  );
  const uuidOf = new Map(sim.vms.map((vm) => [vm.name, vm.uuid]));
  const passwordFile = join(session.dir, "xapi-password");
  writeFileSync(passwordFile, "xenroot\n", { mode: 0o600 });

  const { mgmt, ensured } = await startAgentOnNetwork(session, options, "xenserver", {
    hypervisor: [
      "kind: xenserver",
      "xapi:",
      `  url: ${JSON.stringify(sim.url)}`,
      "  username: root",
      `  passwordFile: ${JSON.stringify(passwordFile)}`,
    ],
    uplink: "eth0",
    netns: dom0.name,
  });
  session.record.firewall = { backend: options.backend, netns: dom0.name, bridges: [ensured.bridge] };

  await session.step(`nic.plug ×${guests.length}`, async () => {
    for (const guest of guests) {
      await mgmt.call(HOST_ID, "nic.plug", {
        vmUuid: uuidOf.get(guest.name),
        networkId: NETWORK_ID,
        mac: guest.mac,
        ipv6: [guest.expected],
      });
    }
  });
  const routerWork = join(session.dir, "router");
  mkdirSync(routerWork, { recursive: true });
  const realRouter = await session.step("router: dnsmasq RA (M flag) + DHCPv6 reservations from vif.report", async () => {
    const reports = await mgmt.waitForVifReports(
      guests.map((guest) => guest.mac),
      () => true,
      30_000,
    );
    return Router.start({
      netns: router,
      interface: "eth0",
      network,
      gateway: LAB_ROUTER,
      workDir: routerWork,
      reservations: reservationsFrom(reports, guests),
      raIntervalSeconds: 4,
      detached: true,
    });
  });
  session.record.pids.push({ name: "router-dnsmasq", pid: realRouter.pid });
  session.routers.push(realRouter);

  // The lab plays the cloud here, which starts VMs through XAPI itself (no event watching, so
  // no long-poll keeps this process alive afterwards).
  const xapi = new XapiConnection({ url: sim.url, auth: { user: "root", password: "xenroot" } });
  await xapi.connect();
  let reports: Map<string, VifReport>;
  try {
    reports = await session.step("start VMs (vif<domid>.0 on dom0's bridge, rules first)", async () => {
      for (const guest of guests) {
        const ref = await xapi.call<string>("VM.get_by_uuid", uuidOf.get(guest.name));
        await xapi.call("VM.start", ref, false, false);
      }
      return mgmt.waitForVifReports(
        guests.map((guest) => guest.mac),
        (report) => report.state === "protected",
        30_000,
      );
    });
  } finally {
    await xapi.close();
  }
  const netnsGuests = new Map<string, NetnsGuest>();
  const guestWork = join(session.dir, "guests");
  mkdirSync(guestWork, { recursive: true });
  for (const guest of guests) {
    const netns = guestNamespaces.get(guest.name) as Netns;
    netnsGuests.set(
      guest.name,
      NetnsGuest.adopt(netns, { mac: guest.mac, host: dom0, port: reports.get(guest.mac)?.device ?? "", workDir: guestWork }),
    );
  }

  const obtained = await session.step("DHCPv6: dhclient -6 -D LL in every guest", async () => {
    const results = await Promise.all(guests.map((guest) => (netnsGuests.get(guest.name) as NetnsGuest).requestAddress(20)));
    recordDhclients(session, netnsGuests);
    return new Map(guests.map((guest, index) => [guest.name, results[index] as string[]]));
  });

  const routerLinkLocal = await linkLocalOf(router, "eth0");
  const attackerGuest = netnsGuests.get(attacker.name) as NetnsGuest;
  const attackerLinkLocal = eui64LinkLocal(attacker.mac);
  const rogueWork = join(session.dir, "rogue");
  mkdirSync(rogueWork, { recursive: true });
  const rogueRouter = await session.step(`attack: rogue RA + DHCPv6 (${ROGUE_NETWORK}) from ${attacker.name}`, async () => {
    const rogueRouterProcess = await Router.start({
      netns: attackerGuest.netns,
      interface: "eth0",
      network: rogue,
      gateway: `${rogue.prefix}1`,
      workDir: rogueWork,
      reservations: victims.map((victim, index) => ({ mac: victim.mac, address: `${rogue.prefix}${(0xbad0 + index).toString(16)}` })),
      raIntervalSeconds: 4,
    });
    session.record.pids.push({ name: "rogue-dnsmasq", pid: rogueRouterProcess.pid });
    // Victims ask again while the rogue server is up: a fresh Solicit it would answer.
    for (const victim of victims) (netnsGuests.get(victim.name) as NetnsGuest).stopDhclient();
    await new Promise((resolve) => setTimeout(resolve, 500));
    await Promise.all(victims.map((victim) => (netnsGuests.get(victim.name) as NetnsGuest).requestAddress(20)));
    recordDhclients(session, netnsGuests);
    return rogueRouterProcess;
  });
  const vifs = await session.step("drop counters (host.diagnose)", () => waitForDrops(mgmt, attacker.mac, 20_000));
  await rogueRouter.stop();

  const rows: LabGuestResult[] = [];
  for (const guest of guests) {
    const netnsGuest = netnsGuests.get(guest.name) as NetnsGuest;
    const addresses = await netnsGuest.globalAddresses();
    const vif = vifs.get(guest.mac);
    const report = reports.get(guest.mac) as VifReport;
    const row: LabGuestResult = {
      name: guest.name,
      role: guest.role,
      mac: guest.mac,
      duidLL: duidLl(guest.mac),
      linkLocal: report.linkLocal,
      device: report.device ?? vif?.device,
      expected: guest.expected,
      obtained: guest.role === "attacker" ? (obtained.get(guest.name) ?? []) : addresses,
      dhcpClient: true,
      drops: vif?.drops ?? {},
    };
    if (guest.role === "victim") {
      const routes = await netnsGuest.routes();
      row.attack = {
        rogueRouteAbsent: !routes.some((route) => route.gateway === attackerLinkLocal || inNetwork(route.destination, rogue)),
        rogueAddressAbsent: !addresses.some((address) => inNetwork(address, rogue)),
        defaultRouteKept: routes.some((route) => route.destination === "default" && route.gateway === routerLinkLocal),
        addressKept: addresses.includes(guest.expected),
        routersSeen: [...new Set(routes.filter((route) => route.destination === "default").map((route) => route.gateway ?? route.device))],
      };
    }
    rows.push(row);
  }
  return summarise(rows, options, "xenserver", ensured.bridge, started);
}

// ------------------------------------------------------------------ KVM (real VMs)

async function runKvmLab(session: LabSession, options: LabOptions, started: number): Promise<LabResult> {
  const network = parseIpv6Network(LAB_NETWORK);
  const guests = labGuests(options.guests);
  const attacker = guests.at(-1) as LabGuest;
  const victims = guests.slice(0, -1);
  const uplink = `${LAB_PREFIX}-up`;

  const router = await session.step("router namespace, uplink veth, libvirtd, guest image", async () => {
    const router = await session.namespace(`${LAB_PREFIX}-rt`);
    session.record.hostLinks.push(uplink);
    session.save();
    // libvirt's taps live in the host's namespace, so the guest bridge does too; its only uplink
    // is this veth, whose peer is the router namespace's eth0 (never the machine's own uplink).
    await run("ip", ["link", "add", uplink, "type", "veth", "peer", "name", "eth0", "netns", router.name]);
    await run("ip", ["link", "set", uplink, "up"]);
    await router.exec("ip", ["link", "set", "eth0", "up"]);
    await ensureLibvirtd();
    return router;
  });
  const image = await buildGuestImage();

  const { mgmt, ensured } = await startAgentOnNetwork(session, options, "kvm", {
    // Software emulation: a nested KVM guest hangs at boot on these machines.
    hypervisor: ["kind: kvm", "uri: qemu:///system", "domainType: qemu"],
    uplink,
  });
  session.record.hostLinks.push(ensured.bridge);
  session.record.firewall = { backend: options.backend, bridges: [ensured.bridge] };
  session.save();

  const routerWork = join(session.dir, "router");
  mkdirSync(routerWork, { recursive: true });
  const realRouter = await session.step("router: dnsmasq RA (M flag) + DHCPv6", () =>
    Router.start({
      netns: router,
      interface: "eth0",
      network,
      gateway: LAB_ROUTER,
      workDir: routerWork,
      raIntervalSeconds: 4,
      detached: true,
    }),
  );
  session.record.pids.push({ name: "router-dnsmasq", pid: realRouter.pid });
  session.routers.push(realRouter);
  const routerLinkLocal = await linkLocalOf(router, "eth0");

  const consoles = new Map<string, VmConsole>();
  const deploy = async (guest: LabGuest, cmdline: string) => {
    session.record.domains.push(guest.name);
    session.save();
    await mgmt.call(HOST_ID, "vm.deploy", {
      uuid: randomUUID(),
      name: guest.name,
      memoryMiB: 256,
      vcpus: 1,
      boot: { kind: "kernel", kernel: image.kernel, initrd: image.initrd, cmdline },
      nics: [{ networkId: NETWORK_ID, mac: guest.mac, ipv6: [guest.expected] }],
    });
    consoles.set(guest.name, await VmConsole.open(guest.name));
  };
  try {
    // The attacker boots first, so its rogue dnsmasq is already sending RAs and answering
    // Solicits when the victims ask: every attack meets the agent's rules, not an empty wire.
    await session.step(`attacker VM ${attacker.name}: rogue RA + DHCPv6 (${ROGUE_NETWORK}) from boot`, async () => {
      await deploy(attacker, `${image.cmdline} v6agent.rogue=${ROGUE_NETWORK}`);
      await (consoles.get(attacker.name) as VmConsole).waitFor(
        "the rogue dnsmasq's first RA",
        (parsed) => (parsed.rogue.has("eth0") && (consoles.get(attacker.name) as VmConsole).contains("RTR-ADVERT") ? true : undefined),
        150_000,
      );
    });
    const reports = await session.step(`victim VMs ×${victims.length} (vm.deploy), reservations from vif.report`, async () => {
      for (const victim of victims) await deploy(victim, image.cmdline);
      const reports = await mgmt.waitForVifReports(
        guests.map((guest) => guest.mac),
        (report) => report.state === "protected",
        60_000,
      );
      await realRouter.setReservations(reservationsFrom(reports, guests));
      return reports;
    });
    await session.step("DHCPv6: dhclient -6 -D LL in every victim, RA default route", () =>
      Promise.all(
        victims.map((victim) =>
          (consoles.get(victim.name) as VmConsole).waitFor(
            `${victim.name}'s reserved address and default route`,
            (parsed) => {
              const net = parsed.network.get("eth0");
              return net?.addresses.includes(victim.expected) && net.routers.includes(routerLinkLocal) ? net : undefined;
            },
            150_000,
          ),
        ),
      ),
    );
    // A few more rogue RAs (every 4 s) reach the victims' ports while they watch.
    const vifs = await session.step("drop counters (host.diagnose)", async () => {
      await new Promise((resolve) => setTimeout(resolve, 8000));
      return waitForDrops(mgmt, attacker.mac, 30_000);
    });

    const rows: LabGuestResult[] = guests.map((guest) => {
      const parsed = (consoles.get(guest.name) as VmConsole).parsed();
      const report = reports.get(guest.mac) as VifReport;
      const vif = vifs.get(guest.mac);
      const everAddresses = [...(parsed.everAddresses.get("eth0") ?? [])];
      const everRouters = [...(parsed.everRouters.get("eth0") ?? [])];
      const now = parsed.network.get("eth0");
      const row: LabGuestResult = {
        name: guest.name,
        role: guest.role,
        mac: guest.mac,
        duidLL: duidLl(guest.mac),
        linkLocal: parsed.linkLocal.get("eth0") ?? report.linkLocal,
        device: report.device ?? vif?.device,
        expected: guest.expected,
        obtained: guest.role === "attacker" ? [] : (now?.addresses ?? []),
        dhcpClient: guest.role === "victim",
        drops: vif?.drops ?? {},
      };
      if (guest.role === "victim") {
        row.attack = {
          rogueRouteAbsent: !everRouters.some((router) => router !== routerLinkLocal),
          rogueAddressAbsent: !everAddresses.some((address) => inNetwork(address, parseIpv6Network(ROGUE_NETWORK))),
          defaultRouteKept: now?.routers.includes(routerLinkLocal) === true,
          addressKept: now?.addresses.includes(guest.expected) === true,
          routersSeen: everRouters,
        };
      }
      return row;
    });
    return summarise(rows, options, "kvm", ensured.bridge, started);
  } finally {
    // Kept beside the record for whoever explores a --keep lab (or a failed one's log).
    for (const [name, vmConsole] of consoles) {
      writeFileSync(join(session.dir, `${name}.console`), vmConsole.output());
      vmConsole.close();
    }
  }
}

// ------------------------------------------------------------------ helpers

/** The guests' background dhclients go into the record, so `lab down` stops them by pid too. */
function recordDhclients(session: LabSession, guests: ReadonlyMap<string, NetnsGuest>): void {
  session.record.pids = session.record.pids.filter((entry) => !entry.name.startsWith("dhclient "));
  for (const [name, guest] of guests) {
    const pid = guest.dhclientPid();
    if (pid !== undefined) session.record.pids.push({ name: `dhclient ${name}`, pid });
  }
  session.save();
}

function summarise(
  rows: LabGuestResult[],
  options: LabOptions,
  hypervisor: "kvm" | "xenserver",
  bridge: string,
  started: number,
): LabResult {
  const addressesOk = rows.every(guestOk);
  const attacksDropped = rows.every((row) =>
    row.attack === undefined
      ? attackerCountersOk(row)
      : row.attack.rogueAddressAbsent && row.attack.rogueRouteAbsent && row.attack.defaultRouteKept && row.attack.addressKept,
  );
  return {
    ok: addressesOk && attacksDropped,
    hypervisor,
    guestKind: options.guestKind,
    backend: options.backend,
    network: LAB_NETWORK,
    bridge,
    router: LAB_ROUTER,
    roguePrefix: ROGUE_NETWORK,
    guests: rows,
    addressesOk,
    attacksDropped,
    seconds: (Date.now() - started) / 1000,
    kept: options.keep,
  };
}

async function linkLocalOf(netns: Netns, device: string): Promise<string> {
  const links = await netns.ipJson<{ addr_info?: { local: string; scope: string }[] }[]>(["-6", "addr", "show", "dev", device]);
  const address = links[0]?.addr_info?.find((info) => info.scope === "link")?.local;
  if (address === undefined) throw new V6Error("host_failure", `${device} in ${netns.name} has no link-local address`);
  return address;
}

function inNetwork(address: string, network: Ipv6Network): boolean {
  try {
    parseAddressInNetwork(address.split("/")[0] ?? "", network, "address");
    return true;
  } catch {
    return false;
  }
}

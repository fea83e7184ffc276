/** The steps every lab mode takes: the management server, the agent on the lab network, reservations, drops, the result table. */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Ipv6Network, type Mac, parseAddressInNetwork, parseMac } from "../addressing/index.js";
import { V6Error } from "../errors.js";
import type { DropReason } from "../firewall/model.js";
import type { VifReport } from "../protocol/schemas.js";
import type { NetnsGuest } from "./guest-netns.js";
import type { LabOptions } from "./lab-options.js";
import { CLI_PATH, waitForJsonLine } from "./lab-processes.js";
import { attackerCountersOk, guestOk, identityOk, type LabGuestResult, type LabResult } from "./lab-result.js";
import { HOST_ID, LAB_NETWORK, LAB_ROUTER, type LabGuest, type LabSession, NETWORK_ID, ROGUE_NETWORK } from "./lab-session.js";
import { MgmtClient } from "./mgmt-client.js";
import type { Netns } from "./netns.js";

/** The management server on free loopback ports with a fresh lab token (agents) and API token. */
export async function startManagement(session: LabSession): Promise<{ mgmt: MgmtClient; agentsUrl: string; tokenFile: string }> {
  const tokenFile = join(session.dir, "token");
  writeFileSync(tokenFile, `${randomBytes(24).toString("hex")}\n`, { mode: 0o600 });
  const apiToken = randomBytes(24).toString("hex");
  const apiTokenFile = join(session.dir, "api-token");
  writeFileSync(apiTokenFile, `${apiToken}\n`, { mode: 0o600 });
  const { handle, log } = session.child("mgmt", CLI_PATH, [
    "mgmt",
    "--listen",
    "127.0.0.1:0",
    "--api",
    "127.0.0.1:0",
    "--api-token-file",
    apiTokenFile,
    "--lab-token-file",
    tokenFile,
    "--heartbeat-ms",
    "5000",
  ]);
  const endpoints = await waitForJsonLine<{ agents: string; api: string }>(handle, log, ["agents", "api"], "v6agent mgmt");
  return { mgmt: new MgmtClient(endpoints.api, apiToken), agentsUrl: endpoints.agents, tokenFile };
}

export function agentConfigYaml(fields: {
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
    // The lab's own socket, so a lab never takes /run/v6agent/status.sock from a host's agent.
    `statusSocket: ${JSON.stringify(`${fields.stateDir}/status.sock`)}`,
    "logLevel: info",
    ...(fields.netns === undefined ? [] : [`netns: ${fields.netns}`]),
    "",
  ].join("\n");
}

/** The management server, the agent daemon registered with it, and the lab's /64 ensured through it. */
export async function startAgentOnNetwork(
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

export async function startAgent(session: LabSession, mgmt: MgmtClient, yaml: string): Promise<void> {
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

export function reservationsFrom(reports: Map<string, VifReport>, guests: readonly LabGuest[]) {
  return guests.map((guest) => {
    const report = reports.get(guest.mac) as VifReport;
    const address = report.ipv6?.[0];
    if (address === undefined) throw new V6Error("internal", `vif.report for ${guest.mac} carries no assigned address`);
    return { mac: parseMac(report.mac), address };
  });
}

export async function diagnoseDrops(
  mgmt: MgmtClient,
): Promise<Map<string, { device?: string; drops: Partial<Record<DropReason, number>> }>> {
  const report = (await mgmt.call(HOST_ID, "host.diagnose", {})) as unknown as {
    vifs?: { mac: string; device?: string; drops?: Partial<Record<DropReason, number>> }[];
  };
  return new Map((report.vifs ?? []).map((vif) => [vif.mac, { device: vif.device, drops: vif.drops ?? {} }]));
}

/** Polls host.diagnose until the attacker's port shows RA and DHCPv6-server drops (or the time is up). */
export async function waitForDrops(mgmt: MgmtClient, attacker: Mac, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const vifs = await diagnoseDrops(mgmt);
    const drops = vifs.get(attacker)?.drops ?? {};
    if (((drops.ra ?? 0) > 0 && (drops.dhcpv6Server ?? 0) > 0) || Date.now() > deadline) return vifs;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/**
 * The DUID the agent saw each DHCP client send, from its vif.reports (observedDuid): waits until
 * every one of `macs` has one, or the time is up (a guest not seen is reported as such).
 */
export async function observedDuids(mgmt: MgmtClient, macs: readonly string[], timeoutMs: number) {
  const reports = await mgmt
    .waitForVifReports(macs, (report) => report.observedDuid !== undefined, timeoutMs)
    .catch(() => mgmt.waitForVifReports([], () => true, 0));
  return (mac: string): Pick<LabGuestResult, "observedDuid" | "duidMatches"> => {
    const observed = reports.get(mac)?.observedDuid;
    return observed === undefined ? {} : { observedDuid: `${observed.typeName} ${observed.duid}`, duidMatches: observed.matchesDuidLL };
  };
}

/** The guests' background dhclients go into the record, so `lab down` stops them by pid too. */
export function recordDhclients(session: LabSession, guests: ReadonlyMap<string, NetnsGuest>): void {
  session.record.pids = session.record.pids.filter((entry) => !entry.name.startsWith("dhclient "));
  for (const [name, guest] of guests) {
    const pid = guest.dhclientPid();
    if (pid !== undefined) session.record.pids.push({ name: `dhclient ${name}`, pid });
  }
  session.save();
}

export function summarise(
  rows: LabGuestResult[],
  options: LabOptions,
  hypervisor: "kvm" | "xenserver",
  bridge: string,
  started: number,
): LabResult {
  const addressesOk = rows.every(guestOk);
  const attacksDropped = rows.every((row) =>
    row.role === "duid-llt"
      ? true
      : row.attack === undefined
        ? attackerCountersOk(row)
        : row.attack.rogueAddressAbsent && row.attack.rogueRouteAbsent && row.attack.defaultRouteKept && row.attack.addressKept,
  );
  const identitiesOk = rows.every(identityOk);
  return {
    ok: addressesOk && attacksDropped && identitiesOk,
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
    identitiesOk,
    seconds: (Date.now() - started) / 1000,
    kept: options.keep,
  };
}

export async function linkLocalOf(netns: Netns, device: string): Promise<string> {
  const links = await netns.ipJson<{ addr_info?: { local: string; scope: string }[] }[]>(["-6", "addr", "show", "dev", device]);
  const address = links[0]?.addr_info?.find((info) => info.scope === "link")?.local;
  if (address === undefined) throw new V6Error("host_failure", `${device} in ${netns.name} has no link-local address`);
  return address;
}

export function inNetwork(address: string, network: Ipv6Network): boolean {
  try {
    parseAddressInNetwork(address.split("/")[0] ?? "", network, "address");
    return true;
  } catch {
    return false;
  }
}

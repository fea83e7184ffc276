import { existsSync, readFileSync } from "node:fs";
import { parse } from "yaml";
import { DEFAULT_CONFIG_PATH } from "../daemon/config.js";
import { CONFIG_DEFAULTS } from "../daemon/config-defaults.js";
import type { StatusReport } from "../daemon/daemon-status.js";
import { queryStatus } from "../daemon/status-socket.js";
import { V6Error } from "../errors.js";
import { CliExit, EXIT_NOT_RUNNING } from "./exit.js";

export interface StatusCommandOptions {
  config?: string;
  socket?: string;
  json?: boolean;
}

/**
 * `v6agent status`: asks the running daemon over its status socket (config `statusSocket`, or
 * `--socket`) and prints its account. Exit 0 when it answers; 3 (LSB "not running") when no
 * daemon listens, with a message saying so.
 */
export async function runStatus(options: StatusCommandOptions): Promise<void> {
  const path = options.socket ?? socketOf(options.config);
  let report: StatusReport;
  try {
    report = (await queryStatus(path)) as StatusReport;
  } catch (error) {
    throw new CliExit(error instanceof V6Error && error.code === "unavailable" ? EXIT_NOT_RUNNING : 1, error);
  }
  process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatStatus(report)}\n`);
}

/**
 * The socket the configuration names. Only that field is read, leniently: the daemon that is
 * running may have started from an older, valid version of the file, and status must still find it.
 */
function socketOf(configPath: string | undefined): string {
  const path = configPath ?? (existsSync(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : undefined);
  if (path === undefined) return CONFIG_DEFAULTS.statusSocket;
  let raw: unknown;
  try {
    raw = parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new V6Error("invalid_argument", `${path}: cannot read the configuration file: ${(error as Error).message}`, { field: path });
  }
  const socket = (raw as { statusSocket?: unknown } | null)?.statusSocket;
  return typeof socket === "string" ? socket : CONFIG_DEFAULTS.statusSocket;
}

export function formatStatus(report: StatusReport): string {
  const management = report.management;
  const lines = [
    `v6agent ${report.version} (pid ${report.pid}) ${report.phase} since ${report.startedAt}; host ${report.hostId}, config ${report.configPath}`,
    `hypervisor  ${report.hypervisor}; firewall ${report.firewall}`,
  ];
  if (management.connected) {
    const hello = management.lastHello;
    lines.push(
      `management  connected to ${management.server} since ${management.since}${hello?.resumed ? " (session resumed)" : ""}; ${management.outbox} result(s) waiting`,
    );
  } else {
    const why =
      management.lastError === undefined
        ? "no attempt has ended yet"
        : `${management.lastError.reason} (${management.lastError.server}, ${management.lastError.at})`;
    lines.push(`management  NOT connected (${management.state}): ${why}`);
    lines.push(
      `            last hello: ${management.lastHello === undefined ? "never" : `${management.lastHello.at} with ${management.lastHello.server}`}; ${management.outbox} result(s) waiting`,
    );
  }
  lines.push(
    report.stateProblem === undefined
      ? "state       desired state loaded"
      : `state       PROBLEM: ${report.stateProblem}; the live rules are left as they are until the management server's state.sync`,
  );
  lines.push(
    `networks    ${report.networks.length === 0 ? "none" : report.networks.map((n) => `${n.networkId} ${n.prefix} on ${n.bridge}`).join("; ")}`,
  );
  const { protected: covered, unprotected } = report.ports;
  lines.push(`ports       ${covered.length} protected, ${unprotected.length} unprotected`);
  for (const port of unprotected)
    lines.push(`            UNPROTECTED ${port.device} (VM ${port.vmUuid}, ${port.mac}): no rules live for it`);
  if (report.firewallError !== undefined) lines.push(`            the firewall could not be read: ${report.firewallError}`);
  const drops = new Map<string, string[]>();
  for (const drop of report.drops) {
    const key = `${drop.port}${drop.vm === undefined ? "" : ` (VM ${drop.vm})`}`;
    drops.set(key, [...(drops.get(key) ?? []), `${drop.packets} ${drop.reason}`]);
  }
  lines.push(`drops       ${drops.size === 0 ? "none" : ""}`.trimEnd());
  for (const [port, counts] of drops) lines.push(`            ${port}: ${counts.join(", ")}`);
  const last = report.reconcile.last;
  if (last === undefined) lines.push("reconcile   none yet");
  else if (last.error !== undefined) lines.push(`reconcile   FAILED at ${last.at} after ${last.seconds.toFixed(3)} s: ${last.error}`);
  else {
    const changes = [
      ...(last.added ?? []).map((p) => `+${p}`),
      ...(last.updated ?? []).map((p) => `~${p}`),
      ...(last.removed ?? []).map((p) => `-${p}`),
    ];
    lines.push(
      `reconcile   last at ${last.at}, ${last.seconds.toFixed(3)} s: ${last.ports} port(s) of ${last.vms} VM(s), ${last.changed ? `changed ${changes.join(" ") || "shared rules"}` : "nothing to change"}`,
    );
  }
  lines.push(`            ${report.reconcile.runs} run(s), ${report.reconcile.failures} failed`);
  return lines.join("\n");
}

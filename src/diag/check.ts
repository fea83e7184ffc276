import type { DropReason } from "../firewall/model.js";

/** One diagnostic finding: what was checked, how it stands, and the one-line fix when it is not ok. */
export type CheckStatus = "ok" | "warn" | "fail";

export interface CheckResult {
  /** Stable id, e.g. `kernel.bridge`, `sysctl.v6br-net1.accept_ra`, `mgmt.tls.wss://mgmt:8443`. */
  name: string;
  status: CheckStatus;
  message: string;
  /** One line telling the operator what to do; present unless the status is ok. */
  fix?: string;
}

export interface DiagReport {
  hostname: string;
  generatedAt: string;
  worst: CheckStatus;
  checks: CheckResult[];
  /** Per-VIF rows when an agent state or hypervisor was available. */
  vifs?: VifRow[];
}

export interface VifRow {
  vm: string;
  mac: string;
  device?: string;
  duidLL: string;
  linkLocal: string;
  rulesPresent: boolean;
  /** Packets dropped at this port, by reason. */
  drops?: Partial<Record<DropReason, number>>;
  /** The DUID the guest was seen sending (`DUID-LLT 00:01:…`), and whether it is `duidLL`. */
  observedDuid?: string;
  duidMatches?: boolean;
}

const ORDER: Record<CheckStatus, number> = { ok: 0, warn: 1, fail: 2 };

export function worstOf(checks: readonly CheckResult[]): CheckStatus {
  return checks.reduce<CheckStatus>((worst, check) => (ORDER[check.status] > ORDER[worst] ? check.status : worst), "ok");
}

/** Exit code of `v6agent diag`: 0 all ok, 1 a warning, 2 a failure. */
export function exitCodeFor(status: CheckStatus): number {
  return ORDER[status];
}

export function ok(name: string, message: string): CheckResult {
  return { name, status: "ok", message };
}

export function warn(name: string, message: string, fix: string): CheckResult {
  return { name, status: "warn", message, fix };
}

export function fail(name: string, message: string, fix: string): CheckResult {
  return { name, status: "fail", message, fix };
}

/** A managed network as diag sees it: plain data from its caller (the daemon's desired state). */
export interface DiagNetwork {
  networkId: string;
  /** The /64, e.g. `2001:db8:1:1::/64`. */
  prefix: string;
  vlan?: number | undefined;
  bridge: string;
  trustedPorts: readonly string[];
}

/** A guest port the hypervisor shows on a managed bridge. */
export interface DiagPort {
  device: string;
  vmUuid: string;
  mac: string;
  /** An HVM guest's QEMU twin (`tap<domid>.<n>`), which exists only until its PV drivers load. */
  emulated?: boolean | undefined;
}

/** One VIF as the agent would report it. */
export interface DiagVif {
  vmUuid: string;
  mac: string;
  duidLL: string;
  linkLocal: string;
  device?: string | undefined;
  /** What the guest was seen sending as its DHCPv6 client identifier (src/dhcp-observe). */
  observedDuid?: { duid: string; type: number; typeName: string; matchesDuidLL: boolean } | undefined;
}

import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Where a running lab keeps its files and its record of what it made. */
export const LAB_DIR = "/run/v6agent-lab";

/** Every name the lab creates starts with this, so `lab down` can also sweep by name. */
export const LAB_PREFIX = "v6lab";

/**
 * What the lab has made so far, written after each step, so `v6agent lab down` (or a lab that
 * failed half-way) removes exactly that, even when the lab process itself is gone.
 */
export interface LabRecord {
  startedAt: string;
  namespaces: string[];
  /** Interfaces in the host's own namespace (KVM labs: the guest bridge, the uplink veth). */
  hostLinks: string[];
  /** libvirt domains by name. */
  domains: string[];
  /** Processes to stop: the management server, the agent, the XAPI simulator. */
  pids: { name: string; pid: number }[];
  /** Firewall backend the lab's agent used, the namespace it ran in and its bridges (rules to remove). */
  firewall?: { backend: "nft" | "xtables"; netns?: string; bridges?: string[] };
}

export function emptyLabRecord(): LabRecord {
  return { startedAt: new Date().toISOString(), namespaces: [], hostLinks: [], domains: [], pids: [] };
}

export function labRecordPath(dir = LAB_DIR): string {
  return join(dir, "lab.json");
}

export function readLabRecord(dir = LAB_DIR): LabRecord | undefined {
  try {
    return JSON.parse(readFileSync(labRecordPath(dir), "utf8")) as LabRecord;
  } catch {
    return undefined;
  }
}

export function writeLabRecord(record: LabRecord, dir = LAB_DIR): void {
  mkdirSync(dir, { recursive: true });
  const temporary = `${labRecordPath(dir)}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(record, null, 2)}\n`);
  renameSync(temporary, labRecordPath(dir));
}

import { join } from "node:path";
import { type Mac, parseMac } from "../addressing/index.js";
import type { DaemonHandle } from "../exec.js";
import { startNodeChild } from "./lab-processes.js";
import { emptyLabRecord, LAB_PREFIX, type LabRecord, writeLabRecord } from "./lab-state.js";
import { Netns } from "./netns.js";
import type { Router } from "./router.js";

/** Reports each step as it starts and ends (the CLI draws the live line). */
export type LabProgress = (event: { step: string; status: "start" | "done" | "fail"; detail?: string }) => void;

export const LAB_NETWORK = "2001:db8:6c:1::/64";
export const LAB_ROUTER = "2001:db8:6c:1::1";
export const ROGUE_NETWORK = "2001:db8:bad:1::/64";
export const HOST_ID = `${LAB_PREFIX}-host`;
export const NETWORK_ID = `${LAB_PREFIX}-net`;

export interface LabGuest {
  name: string;
  /**
   * victim: asks by DUID-LL and must get its address; attacker: attacks the others; duid-llt: a
   * guest left with its DHCP client's default DUID (a DUID-LLT), which the agent must report as
   * not matching, and which gets no address.
   */
  role: "victim" | "attacker" | "duid-llt";
  mac: Mac;
  expected: string;
}

/** The lab's `count` guests (the last of them the attacker, the others its victims), then one DUID-LLT guest. */
export function labGuests(count: number): LabGuest[] {
  return Array.from({ length: count + 1 }, (_, index) => ({
    name: `${LAB_PREFIX}-g${index + 1}`,
    role: index === count ? "duid-llt" : index === count - 1 ? "attacker" : "victim",
    mac: parseMac(`52:54:00:6c:00:${(index + 1).toString(16).padStart(2, "0")}`),
    expected: `2001:db8:6c:1::${(0x100 + index + 1).toString(16)}`,
  }));
}

/** Everything the running lab holds, so one teardown path serves success, failure and Ctrl-C. */
export class LabSession {
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
      this.progress({ step, status: "done", detail: text });
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

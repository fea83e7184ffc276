import { readFileSync } from "node:fs";
import { mkdir, open, readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import { V6Error } from "../errors.js";

/** What the lock file holds: the owner's pid and its start time, so a re-used pid is not taken for the owner. */
interface LockOwner {
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot). */
  startTime: string;
}

/**
 * One daemon per state directory: two daemons with one state file would overwrite each other's
 * desired state and journal, and with one host id replace each other at the server forever.
 * `<stateDir>/v6agent.lock` is created exclusively and names its owner; a lock whose owner is gone
 * (a crash, kill -9) is taken over. A state directory that cannot be made or written to is an
 * error here, at start, with the path in the message. Returns the release function.
 */
export async function lockStateDir(stateDir: string): Promise<() => Promise<void>> {
  const path = join(stateDir, "v6agent.lock");
  try {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new V6Error("host_failure", `stateDir ${stateDir} cannot be used: ${(error as Error).message}`, {
      field: "stateDir",
      cause: error,
    });
  }
  const me: LockOwner = { pid: process.pid, startTime: startTimeOf(process.pid) ?? "" };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(path, "wx", 0o600);
      await handle.writeFile(`${JSON.stringify(me)}\n`);
      await handle.close();
      return async () => {
        const owner = await readOwner(path);
        if (owner?.pid === me.pid && owner.startTime === me.startTime) await unlink(path).catch(() => undefined);
      };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "EEXIST") {
        throw new V6Error("host_failure", `stateDir ${stateDir} cannot be used: ${(error as Error).message}`, {
          field: "stateDir",
          cause: error,
        });
      }
    }
    const owner = await readOwner(path);
    if (owner !== undefined && owner.startTime !== "" && startTimeOf(owner.pid) === owner.startTime) {
      throw new V6Error(
        "conflict",
        `another v6agent (pid ${owner.pid}) is running with stateDir ${stateDir}; stop it first (one daemon per state directory)`,
        { field: "stateDir" },
      );
    }
    // Its owner is gone, or it is unreadable (a crash while writing it): take it over.
    await unlink(path).catch(() => undefined);
  }
  throw new V6Error("conflict", `could not take ${path}: another v6agent keeps taking it`, { field: "stateDir" });
}

async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    const raw = JSON.parse(await readFile(path, "utf8")) as Partial<LockOwner>;
    return typeof raw.pid === "number" && typeof raw.startTime === "string" ? { pid: raw.pid, startTime: raw.startTime } : undefined;
  } catch {
    return undefined;
  }
}

/** The process's start time from /proc, or undefined when there is no such process. */
function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) is parenthesised and may hold spaces: count fields after it.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

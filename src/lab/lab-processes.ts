import { closeSync, openSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { V6Error } from "../errors.js";
import { type DaemonHandle, startDaemon } from "../exec.js";

/** The built CLI (dist/src/cli.js) and the XAPI simulator's process entry (dist/test/...). */
export const CLI_PATH = fileURLToPath(new URL("../cli.js", import.meta.url));
export const XAPI_SIM_PATH = fileURLToPath(new URL("./xapi-sim/lab-main.js", import.meta.url));

/**
 * Starts a Node child (the lab's management server, agent or XAPI simulator) in its own process
 * group, its output appended to `logFile`, so it can outlive `lab --keep` and be stopped by pid.
 */
export function startNodeChild(script: string, args: readonly string[], logFile: string): DaemonHandle {
  const fd = openSync(logFile, "a");
  try {
    return startDaemon(process.execPath, [script, ...args], { outputFd: fd, detached: true });
  } finally {
    closeSync(fd);
  }
}

/**
 * Waits for the first line of `logFile` that is a JSON object with every key in `keys` (what
 * `v6agent mgmt` and the simulator print once they listen); fails with the log's tail if the
 * child exits first.
 */
export async function waitForJsonLine<T>(
  child: DaemonHandle,
  logFile: string,
  keys: readonly string[],
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  let exited = false;
  void child.exited.then(() => {
    exited = true;
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = readFileSync(logFile, "utf8");
    for (const line of text.split("\n")) {
      if (!line.startsWith("{")) continue;
      try {
        const value = JSON.parse(line) as Record<string, unknown>;
        if (keys.every((key) => key in value)) return value as T;
      } catch {
        // a partial line
      }
    }
    if (exited || Date.now() > deadline) {
      throw new V6Error("host_failure", `${what} ${exited ? "exited" : "did not start"}: ${text.trim().slice(-1500)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** True while a process with this pid exists. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopPid(pid: number, graceMs = 8000): Promise<void> {
  if (!processAlive(pid)) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (processAlive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  if (processAlive(pid)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
    while (processAlive(pid)) await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// The real `v6agent run` daemon as a child process (from dist/, so `npm run build` first), with
// its config written from an object, its output captured, and helpers to wait for its exit.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";

// From test/support/ (vitest) or dist/test/support/ (compiled benchmarks): the repository root.
const ROOT = join(import.meta.dirname, "..", "..", ...(import.meta.dirname.includes("/dist/") ? [".."] : []));
export const CLI = join(ROOT, "dist", "src", "cli.js");

export interface DaemonProcess {
  child: ChildProcess;
  /** Everything it wrote so far (stdout and stderr, pino JSON lines). */
  output(): string;
  /** Resolves with the exit code (or the signal's name) once it exited. */
  exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it is gone. */
  stop(graceMs?: number): Promise<number | string>;
}

export function writeConfig(directory: string, config: unknown, name = "agent.yaml"): string {
  const path = join(directory, name);
  writeFileSync(path, stringify(config), { mode: 0o600 });
  return path;
}

/** Starts `node [nodeArgs] dist/src/cli.js <args>`; `env` adds to this process's environment. */
export function startCli(args: readonly string[], env: Record<string, string> = {}, nodeArgs: readonly string[] = []): DaemonProcess {
  const child = spawn(process.execPath, [...nodeArgs, CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    text += chunk.toString("utf8");
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    text += chunk.toString("utf8");
  });
  const exited = new Promise<number | string>((resolve) => {
    child.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown"));
  });
  return {
    child,
    output: () => text,
    exited,
    async stop(graceMs = 30_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        const result = await exited;
        clearTimeout(timer);
        return result;
      }
      return exited;
    },
  };
}

/** The `Environment=` settings of a systemd unit's text (packaging/v6agent.service by default). */
export function serviceEnvironment(unit = readFileSync(join(ROOT, "packaging", "v6agent.service"), "utf8")): Record<string, string> {
  const environment: Record<string, string> = {};
  for (const [, name, value] of unit.matchAll(/^Environment=([A-Za-z_][A-Za-z0-9_]*)=(.*)$/gm))
    environment[name as string] = value as string;
  return environment;
}

export function startAgentDaemon(configPath: string, env: Record<string, string> = {}, nodeArgs: readonly string[] = []): DaemonProcess {
  return startCli(["run", "--config", configPath], env, nodeArgs);
}

export { waitFor } from "./wait.js";

import { spawn } from "node:child_process";
import { V6Error } from "./errors.js";

/**
 * The one place v6agent runs external programs (design section 8): argument arrays only (no
 * shell), a timeout, stdin for rule batches, and stderr kept in the error.
 */
export interface RunOptions {
  /** Written to the child's stdin, then closed (rule batches for nft -f -, *-restore). */
  input?: string;
  /** Milliseconds before the child is killed; default 30 s. */
  timeoutMs?: number;
  /** Run inside this network namespace (`ip netns exec <ns> ...`). */
  netns?: string;
  /** Exit codes that are not failures (default: only 0). */
  okExitCodes?: readonly number[];
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export class CommandError extends V6Error {
  readonly argv: readonly string[];
  readonly exitCode: number | null;
  readonly stderr: string;

  constructor(argv: readonly string[], exitCode: number | null, stderr: string, reason: string) {
    super("host_failure", `${argv.join(" ")}: ${reason}${stderr.trim() ? `: ${stderr.trim().slice(0, 2000)}` : ""}`);
    this.name = "CommandError";
    this.argv = argv;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const argv = options.netns === undefined ? [command, ...args] : ["ip", "netns", "exec", options.netns, command, ...args];
  const timeoutMs = options.timeoutMs ?? 30_000;
  const okExitCodes = options.okExitCodes ?? [0];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] as string, argv.slice(1), {
      stdio: ["pipe", "pipe", "pipe"],
      env: options.env ?? process.env,
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.on("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const reason = error.code === "ENOENT" ? "command not found" : error.message;
      reject(new CommandError(argv, null, "", reason));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const out = Buffer.concat(stdout).toString("utf8");
      const err = Buffer.concat(stderr).toString("utf8");
      if (timedOut) {
        reject(new CommandError(argv, code, err, `timed out after ${timeoutMs} ms`));
      } else if (code === null) {
        reject(new CommandError(argv, null, err, `killed by ${signal}`));
      } else if (!okExitCodes.includes(code)) {
        reject(new CommandError(argv, code, err, `exit code ${code}`));
      } else {
        resolve({ stdout: out, stderr: err, exitCode: code });
      }
    });
    child.stdin.on("error", () => {
      // The child may exit before reading its input; its exit code tells the story.
    });
    child.stdin.end(options.input ?? "");
  });
}

/** A long-running child (dnsmasq, an agent daemon in the lab) owned by its caller. */
export interface DaemonHandle {
  readonly pid: number;
  readonly argv: readonly string[];
  /** Resolves with the exit code (null when killed by a signal) once the child has exited. */
  readonly exited: Promise<number | null>;
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the child is gone. */
  stop(graceMs?: number): Promise<void>;
  /** Lets this process exit while the child keeps running (with `detached`: `v6agent lab --keep`). */
  unref(): void;
}

export interface DaemonOptions {
  netns?: string;
  env?: NodeJS.ProcessEnv;
  /** Receives the child's stdout and stderr (a file descriptor from fs.openSync); default: discarded. */
  outputFd?: number;
  /** Own session and process group: a Ctrl-C meant for the caller does not reach the child. */
  detached?: boolean;
}

export function startDaemon(command: string, args: readonly string[], options: DaemonOptions = {}): DaemonHandle {
  const argv = options.netns === undefined ? [command, ...args] : ["ip", "netns", "exec", options.netns, command, ...args];
  const output = options.outputFd ?? "ignore";
  const child = spawn(argv[0] as string, argv.slice(1), {
    stdio: ["ignore", output, output],
    env: options.env ?? process.env,
    detached: options.detached === true,
  });
  if (child.pid === undefined) {
    throw new CommandError(argv, null, "", "could not be started");
  }
  const pid = child.pid;
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.on("exit", (code) => {
      exitCode = code;
      resolve(code);
    });
    child.on("error", () => resolve(null));
  });
  return {
    pid,
    argv,
    exited,
    signal(signal) {
      if (exitCode === undefined) child.kill(signal);
    },
    async stop(graceMs = 5000) {
      if (exitCode !== undefined) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
    unref() {
      child.unref();
    },
  };
}

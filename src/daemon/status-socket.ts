import { lstatSync, unlinkSync } from "node:fs";
import { chmod, lstat, mkdir, unlink } from "node:fs/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import { V6Error } from "../errors.js";
import type { Logger } from "../log.js";

/**
 * `v6agent status` over a unix socket: a client connects, the daemon writes one JSON document
 * and closes; nothing is read from the client, so there is nothing to parse or to abuse. The
 * socket is mode 0600 in a directory of mode 0700 (the unit's `RuntimeDirectory=`, or made here):
 * only root reads the status.
 */
export interface StatusServer {
  close(): Promise<void>;
}

const ANSWER_TIMEOUT_MS = 10_000;

export async function serveStatus(path: string, report: () => Promise<unknown>, logger: Logger): Promise<StatusServer> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await clearStale(path);
  const server = createServer((socket) => {
    socket.on("error", () => undefined);
    socket.setTimeout(ANSWER_TIMEOUT_MS, () => socket.destroy());
    report().then(
      (value) => socket.end(`${JSON.stringify(value)}\n`),
      (error: unknown) => {
        logger.warn({ err: error }, "status report failed");
        socket.end(`${JSON.stringify({ error: { code: "internal", message: (error as Error).message } })}\n`);
      },
    );
  });
  await listen(server, path);
  await chmod(path, 0o600);
  // It never keeps the process alive (a start that fails after this point still ends), and its
  // file goes with the process, unless another daemon has put its own socket there since.
  server.unref();
  const { ino } = await lstat(path);
  const remove = () => {
    try {
      if (lstatSync(path).ino === ino) unlinkSync(path);
    } catch {
      // already gone
    }
  };
  process.once("exit", remove);
  return {
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      process.off("exit", remove);
      remove();
    },
  };
}

/** A socket a killed daemon left is removed; anything else at the path, or a daemon answering there, is an error. */
async function clearStale(path: string): Promise<void> {
  const info = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    throw error;
  });
  if (info === undefined) return;
  if (!info.isSocket()) {
    throw new V6Error("conflict", `statusSocket ${path} exists and is not a socket; not replacing it`, { field: "statusSocket" });
  }
  const answering = await new Promise<boolean>((resolve) => {
    const probe = connect(path, () => {
      probe.destroy();
      resolve(true);
    });
    probe.on("error", () => resolve(false));
  });
  if (answering) {
    throw new V6Error("conflict", `another v6agent serves its status on ${path}; give each daemon its own statusSocket`, {
      field: "statusSocket",
    });
  }
  await unlink(path);
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/** Reads the running daemon's status; a daemon that is not running is an `unavailable` error saying so. */
export async function queryStatus(path: string, timeoutMs = ANSWER_TIMEOUT_MS): Promise<unknown> {
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket: Socket = connect(path);
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new V6Error("timeout", `the v6agent daemon did not answer on ${path} within ${timeoutMs / 1000} s`));
    });
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    socket.on("error", (error: NodeJS.ErrnoException) => reject(notRunning(path, error)));
  });
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new V6Error("internal", `the daemon's answer on ${path} is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
  }
}

function notRunning(path: string, error: NodeJS.ErrnoException): V6Error {
  switch (error.code) {
    case "ENOENT":
      return new V6Error("unavailable", `v6agent is not running: no status socket at ${path} (systemctl status v6agent)`, { cause: error });
    case "ECONNREFUSED":
      return new V6Error("unavailable", `v6agent is not running: nothing answers on ${path} (left by a daemon that was killed)`, {
        cause: error,
      });
    case "EACCES":
    case "EPERM":
      return new V6Error("host_failure", `cannot open ${path}: permission denied (v6agent status needs root)`, { cause: error });
    default:
      return new V6Error("host_failure", `cannot read the daemon's status on ${path}: ${error.message}`, { cause: error });
  }
}

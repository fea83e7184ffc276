import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { StateStore } from "../../../src/daemon/state-store.js";
import { type CrashPayload, crashPayload, validateCrashPayload } from "../../support/fixtures/crash-payload.js";

const loop = fileURLToPath(new URL("../../support/fixtures/state-save-loop.ts", import.meta.url));

/**
 * Starts the save loop in a child process, lets it acknowledge at least `target` saves, then
 * kill -9s it wherever it is (writing the temp file, fsyncing, renaming, ...). Returns the last
 * acknowledged sequence number.
 */
function saveUntilKilled(path: string, start: number, target: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", loop, path, String(start)], { stdio: ["ignore", "pipe", "pipe"] });
    let acked = start - 1;
    let buffered = "";
    let stderr = "";
    let killing = false;
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) acked = Number(line.replace("saved ", ""));
      // A random delay after the target so the kill lands anywhere in the next saves.
      if (acked >= target && !killing) {
        killing = true;
        setTimeout(() => child.kill("SIGKILL"), Math.random() * 40);
      }
    });
    // "close", not "exit": every acknowledgement written before the kill has been read by then.
    child.on("close", (_code, signal) => {
      if (signal === "SIGKILL") resolve(acked);
      else reject(new Error(`save loop exited by itself (${_code}): ${stderr}`));
    });
  });
}

it("kill -9 in a tight save loop always leaves the old or the new complete state", async () => {
  const dir = await mkdtemp(join(tmpdir(), "v6agent-crash-"));
  const path = join(dir, "state.json");
  const outcomes = { lastAcknowledged: 0, oneAhead: 0, killedMidWrite: 0 };
  try {
    let seq = 0;
    for (let round = 0; round < 25; round++) {
      // Kill after a varying number of saves so the kill lands at varying points in a save.
      const acked = await saveUntilKilled(path, seq + 1, seq + 3 + ((round * 7) % 23));
      // A temp file left behind means the kill landed between creating it and the rename.
      if ((await readdir(dir)).some((name) => name.includes(".tmp-"))) outcomes.killedMidWrite++;
      const store = new StateStore<CrashPayload>({ path, version: 1, validate: validateCrashPayload, empty: () => crashPayload(-1) });
      const value = await store.load();
      expect(store.lastLoad?.status).toBe("loaded");
      // Acknowledged saves are durable; the one in flight at the kill either fully landed or not at all.
      expect([acked, acked + 1]).toContain(value.seq);
      outcomes[value.seq === acked ? "lastAcknowledged" : "oneAhead"]++;
      // The copy a save replaced is always whole too (hard link, then rename).
      expect((await readdir(dir)).filter((name) => name !== "state.json.prev")).toEqual(["state.json"]);
      if ((await readdir(dir)).includes("state.json.prev")) JSON.parse(await readFile(`${path}.prev`, "utf8"));
      seq = value.seq;
    }
    console.log(`crash rounds: ${JSON.stringify(outcomes)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

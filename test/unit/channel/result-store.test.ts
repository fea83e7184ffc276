import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ResultStore } from "../../../src/channel/index.js";
import { RPC_ERRORS } from "../../../src/protocol/index.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function journal(): string {
  const dir = mkdtempSync(join(tmpdir(), "v6agent-outbox-"));
  dirs.push(dir);
  return join(dir, "outbox.jsonl");
}

const HEADER = '{"t":"journal","v":1}\n';

describe("ResultStore", () => {
  it("survives a restart: finished results stay unsent until marked, the resume token and digests are kept", () => {
    const path = journal();
    const store = new ResultStore({ path });
    store.resumeToken = "tok";
    store.begin("a", "vm.stop", "d-a");
    store.complete("a", { result: { ok: 1 } });
    store.begin(7, "vm.list", "d-7");
    store.complete(7, { result: { vms: [] } });
    store.markSent(7);
    store.close();
    const again = new ResultStore({ path });
    expect(again.damaged).toBe(false);
    expect(again.resumeToken).toBe("tok");
    expect(again.unsent().map((entry) => [entry.id, entry.response])).toEqual([["a", { result: { ok: 1 } }]]);
    expect(again.get(7)).toMatchObject({ state: "done", sent: true, digest: "d-7" });
    expect(again.get("7")).toBeUndefined();
  });

  it("answers a command that was running at the restart as interrupted", () => {
    const path = journal();
    const store = new ResultStore({ path });
    store.begin("x", "nic.plug", "d-x");
    store.close();
    const again = new ResultStore({ path });
    expect(again.get("x")).toMatchObject({ state: "done", sent: false, response: { error: { code: RPC_ERRORS.interrupted } } });
  });

  it("a missing journal is a fresh one; every record it writes reads back undamaged", () => {
    const path = journal();
    expect(new ResultStore({ path }).damaged).toBe(false);
    expect(readFileSync(path, "utf8")).toBe(HEADER);
    expect(new ResultStore({ path }).damaged).toBe(false);
  });

  // Issue 17, finding 6: a torn or garbage journal was a warning, and the ids it held ran again.
  it.each([
    ["empty", ""],
    ["without its header", '{"t":"start","id":"a","method":"vm.stop"}\n'],
    ["cut short", `${HEADER}{"t":"start","id":"a","method":"vm.stop"}\n{"t":"done","id":"a","resp`],
    [
      "with a garbage line",
      `${HEADER}{"t":"start","id":"a","method":"vm.stop"}\n\u0000\u0001\n{"t":"start","id":"b","method":"vm.stop"}\n`,
    ],
    ["with a record of an unknown kind", `${HEADER}{"t":"started","id":"a"}\n`],
    ["with an answer to an id that never started", `${HEADER}{"t":"done","id":"a","response":{"result":1}}\n`],
    ["with a second header", `${HEADER}${HEADER}`],
  ])("is damaged when %s, keeps what it could read, and stays damaged across restarts until acknowledged", (_name, text) => {
    const path = journal();
    writeFileSync(path, text);
    const store = new ResultStore({ path });
    expect(store.damaged).toBe(true);
    store.close();
    const again = new ResultStore({ path });
    expect(again.damaged).toBe(true);
    // The damaged file itself is kept for a post-mortem, as it was found.
    expect(readFileSync(`${path}.damaged`, "utf8")).toBe(text);
    again.acknowledgeDamage();
    expect(again.damaged).toBe(false);
    again.close();
    expect(new ResultStore({ path }).damaged).toBe(false);
  });

  it("keeps the readable records of a damaged journal: a known id stays known", () => {
    const path = journal();
    writeFileSync(
      path,
      `${HEADER}{"t":"start","id":"a","method":"vm.stop","digest":"d"}\n{"t":"done","id":"a","response":{"result":1}}\ngarbage\n`,
    );
    const store = new ResultStore({ path });
    expect(store.damaged).toBe(true);
    expect(store.get("a")).toMatchObject({ state: "done", response: { result: 1 }, digest: "d" });
  });

  it("throws, naming the path, when the journal is a directory", () => {
    const path = journal();
    mkdirSync(path);
    expect(() => new ResultStore({ path })).toThrow(new RegExp(`command journal ${path} is unusable: EISDIR`));
  });

  it("refuses to begin a command it cannot journal, and records nothing of it", () => {
    const path = journal();
    const store = new ResultStore({ path });
    // Replace the journal's file by a directory: the next append (or its rewrite) fails.
    rmSync(path);
    mkdirSync(path);
    store.close();
    expect(() => store.begin("a", "vm.stop", "d")).toThrow(/cannot write/);
    expect(store.get("a")).toBeUndefined();
  });

  it("is bounded: evicts delivered results first, and compacts its journal", () => {
    const path = journal();
    const store = new ResultStore({ path, maxEntries: 10 });
    for (let i = 0; i < 100; i++) {
      store.begin(i, "vm.list", `d-${i}`);
      store.complete(i, { result: i });
      if (i !== 5) store.markSent(i);
    }
    expect(store.size).toBe(10);
    expect(store.get(5)).toMatchObject({ sent: false });
    store.close();
    expect(readFileSync(path, "utf8").split("\n").length).toBeLessThan(100);
    const again = new ResultStore({ path });
    expect(again.damaged).toBe(false);
    expect(again.unsent().map((entry) => entry.id)).toEqual([5]);
  });
});

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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

describe("ResultStore", () => {
  it("survives a restart: finished results stay unsent until marked, the resume token is kept", () => {
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
    expect(again.resumeToken).toBe("tok");
    expect(again.unsent().map((entry) => [entry.id, entry.response])).toEqual([["a", { result: { ok: 1 } }]]);
    expect(again.get(7)).toMatchObject({ state: "done", sent: true });
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

  it("skips a torn last line", () => {
    const path = journal();
    writeFileSync(path, '{"t":"start","id":"a","method":"vm.stop"}\n{"t":"done","id":"a","response":{"result":1}}\n{"t":"sent","i');
    expect(new ResultStore({ path }).get("a")).toMatchObject({ state: "done", sent: false });
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
    expect(new ResultStore({ path }).unsent().map((entry) => entry.id)).toEqual([5]);
  });
});

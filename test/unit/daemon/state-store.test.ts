import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { StateStore } from "../../../src/daemon/state-store.js";
import { V6Error } from "../../../src/errors.js";

interface Desired {
  ports: string[];
}

function validate(raw: unknown): Desired {
  const value = raw as Desired;
  if (!Array.isArray(value?.ports) || value.ports.some((port) => typeof port !== "string"))
    throw new Error("ports must be a list of strings");
  return { ports: [...value.ports] };
}

let dir: string;
let path: string;
const fixedNow = () => new Date("2026-11-26T10:00:00.000Z");
const store = (version = 2) => new StateStore<Desired>({ path, version, validate, empty: () => ({ ports: [] }), now: fixedNow });

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "v6agent-state-"));
  path = join(dir, "state", "state.json");
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("StateStore", () => {
  it("gives the empty state when nothing was saved", async () => {
    const s = store();
    expect(await s.load()).toEqual({ ports: [] });
    expect(s.lastLoad).toEqual({ status: "missing" });
  });

  it("round-trips a saved state with its schema version, readable by root only", async () => {
    await store().save({ ports: ["vnet0", "vnet1"] });
    const onDisk = JSON.parse(await readFile(path, "utf8"));
    expect(onDisk).toEqual({ schemaVersion: 2, savedAt: "2026-11-26T10:00:00.000Z", state: { ports: ["vnet0", "vnet1"] } });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const s = store();
    expect(await s.load()).toEqual({ ports: ["vnet0", "vnet1"] });
    expect(s.lastLoad).toEqual({ status: "loaded", savedAt: "2026-11-26T10:00:00.000Z" });
  });

  it("refuses a newer schema version, naming both versions, and leaves the file alone", async () => {
    await store(3).save({ ports: ["vnet0"] });
    const error = await store(2)
      .load()
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(V6Error);
    expect((error as V6Error).code).toBe("conflict");
    expect((error as V6Error).message).toMatch(/schema version 3, newer than the 2 this v6agent understands/);
    expect(JSON.parse(await readFile(path, "utf8")).schemaVersion).toBe(3);
  });

  it("refuses an older schema version (no migrations exist yet)", async () => {
    await store(1).save({ ports: ["vnet0"] });
    await expect(store(2).load()).rejects.toThrow(/schema version 1, older than 2, and no migration exists yet/);
  });

  it("keeps a file that is not JSON aside, reports it and starts empty", async () => {
    await mkdir(join(dir, "state"));
    await writeFile(path, '{"schemaVersion": 2, "savedAt": "x", "state": {"po');
    const s = store();
    expect(await s.load()).toEqual({ ports: [] });
    const keptAs = `${path}.corrupt-2026-11-26T10-00-00.000Z`;
    expect(s.lastLoad).toEqual({ status: "corrupt", reason: expect.stringMatching(/^not JSON/), keptAs });
    expect(await readFile(keptAs, "utf8")).toBe('{"schemaVersion": 2, "savedAt": "x", "state": {"po');
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
  });

  it("keeps aside a file whose envelope lacks a schema version", async () => {
    await mkdir(join(dir, "state"));
    await writeFile(path, JSON.stringify({ state: { ports: [] } }));
    const s = store();
    await s.load();
    expect(s.lastLoad).toMatchObject({ status: "corrupt", reason: "schemaVersion is missing or not a positive integer" });
  });

  it("keeps aside a payload the validator rejects, with the validator's reason", async () => {
    await mkdir(join(dir, "state"));
    await writeFile(path, JSON.stringify({ schemaVersion: 2, savedAt: "2026-01-01T00:00:00Z", state: { ports: [1] } }));
    const s = store();
    expect(await s.load()).toEqual({ ports: [] });
    expect(s.lastLoad).toMatchObject({ status: "corrupt", reason: "invalid state: ports must be a list of strings" });
  });

  it("serialises concurrent saves: they finish in call order and the last one wins", async () => {
    const s = store();
    const finished: number[] = [];
    await Promise.all(Array.from({ length: 40 }, (_, index) => s.save({ ports: [`vnet${index}`] }).then(() => finished.push(index))));
    expect(finished).toEqual(Array.from({ length: 40 }, (_, index) => index));
    expect(await store().load()).toEqual({ ports: ["vnet39"] });
    expect((await readdir(join(dir, "state"))).sort()).toEqual(["state.json", "state.json.prev"]);
    expect(JSON.parse(await readFile(`${path}.prev`, "utf8")).state).toEqual({ ports: ["vnet38"] });
  });

  it("falls back to the previous good state when the file is damaged behind its back (truncated, emptied, garbage)", async () => {
    for (const damage of ["", '{"schemaVersion": 2, "savedAt": "x", "st', "\u0000\u0000garbage"]) {
      await rm(join(dir, "state"), { recursive: true, force: true });
      const s = store();
      await s.save({ ports: ["vnet1"] });
      await s.save({ ports: ["vnet1", "vnet2"] });
      await writeFile(path, damage);
      const loader = store();
      expect(await loader.load()).toEqual({ ports: ["vnet1"] });
      expect(loader.lastLoad).toMatchObject({ status: "recovered", keptAs: `${path}.corrupt-2026-11-26T10-00-00.000Z` });
      expect(loader.unusable()).toBeUndefined();
    }
  });

  it("with no good previous state, loads empty but says the state is unusable, so nothing is acted on", async () => {
    await mkdir(join(dir, "state"), { recursive: true });
    await writeFile(path, "{ truncated");
    const loader = store();
    expect(await loader.load()).toEqual({ ports: [] });
    expect(loader.lastLoad?.status).toBe("corrupt");
    expect(loader.unusable()).toMatch(/^state file .* is corrupt \(not JSON: .*; kept as .*corrupt-/);
  });

  it("refuses a state path it cannot read (a directory) with an error, not an empty state", async () => {
    await mkdir(path, { recursive: true });
    await expect(store().load()).rejects.toMatchObject({ code: "host_failure", message: expect.stringMatching(/EISDIR/) });
  });

  it("reports a failed save and keeps serving later ones", async () => {
    await writeFile(join(dir, "state"), "a file where the directory should be");
    const s = store();
    await expect(s.save({ ports: ["vnet0"] })).rejects.toThrow(/cannot save state file|EEXIST|ENOTDIR/);
    await rm(join(dir, "state"));
    await s.save({ ports: ["vnet1"] });
    expect(await store().load()).toEqual({ ports: ["vnet1"] });
  });

  it("removes temp files a killed save left behind, keeping the state", async () => {
    await store().save({ ports: ["vnet7"] });
    await writeFile(join(dir, "state", ".state.json.tmp-999-deadbeef"), '{"half": ');
    expect(await store().load()).toEqual({ ports: ["vnet7"] });
    expect(await readdir(join(dir, "state"))).toEqual(["state.json"]);
    expect(store().unusable()).toBeUndefined();
  });
});

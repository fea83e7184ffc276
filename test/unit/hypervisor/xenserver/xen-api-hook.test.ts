import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { XapiConnection } from "../../../../src/hypervisor/xenserver/xapi-connection.js";

const pkg = (path: string) => JSON.parse(readFileSync(new URL(path, import.meta.url), "utf8")) as Record<string, unknown>;

/**
 * XapiConnection trims cached records by wrapping xen-api's private `_addRecordToCache` (there
 * is no supported option). The dependency is pinned exactly; these tests fail the moment an
 * upgrade moves or changes that hook, instead of the daemon silently caching whole records.
 */
describe("xen-api's private cache hook", () => {
  it("is pinned to the exact version the hook was checked against", () => {
    const wanted = (pkg("../../../../package.json").dependencies as Record<string, string>)["xen-api"];
    expect(wanted).toMatch(/^\d+\.\d+\.\d+$/);
    expect(pkg("../../../../node_modules/xen-api/package.json").version).toBe(wanted);
  });

  it("is where every record enters the cache (initial fetch and event.from), and the wrapper trims through it", () => {
    const source = readFileSync(new URL("../../../../node_modules/xen-api/index.mjs", import.meta.url), "utf8");
    expect(source.match(/this\._addRecordToCache\(type, ref, /g)?.length).toBe(2);
    const connection = new XapiConnection({
      url: "http://127.0.0.1:9",
      auth: { user: "root", password: "x" },
      cachedFields: { VM: ["uuid", "name_label"] },
    });
    const client = connection.client as unknown as { _addRecordToCache(type: string, ref: string, record: object): void };
    client._addRecordToCache("VM", "OpaqueRef:1", { uuid: "u-1", name_label: "vm", other_config: { huge: "x".repeat(1000) } });
    const cached = connection.cachedByRef<Record<string, unknown>>("OpaqueRef:1");
    expect(cached?.uuid).toBe("u-1");
    expect(cached?.name_label).toBe("vm");
    expect(cached).not.toHaveProperty("other_config");
  });
});

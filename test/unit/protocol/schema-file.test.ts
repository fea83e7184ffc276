import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { METHODS } from "../../../src/protocol/index.js";
import { protocolSchemaText } from "../../../src/protocol/schema-document.js";

describe("docs/protocol.schema.json", () => {
  it("is exactly what `npm run gen:schema` generates from src/protocol/", () => {
    const committed = readFileSync(new URL("../../../docs/protocol.schema.json", import.meta.url), "utf8");
    expect(committed, "run `npm run gen:schema` and commit the result").toBe(protocolSchemaText());
  });

  it("describes every method with its params and result", () => {
    const document = JSON.parse(protocolSchemaText()) as { "x-methods": Record<string, unknown>; $defs: Record<string, unknown> };
    expect(Object.keys(document["x-methods"]).sort()).toEqual(Object.keys(METHODS).sort());
    expect(document.$defs.NetworkEnsureParams).toMatchObject({ required: ["networkId", "prefix"], additionalProperties: false });
  });
});

import { readFileSync } from "node:fs";
import type { TSchema } from "@sinclair/typebox";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { Errors } from "@sinclair/typebox/errors";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { methodSchemas, PARAMS_CHECKS, RESULT_CHECKS } from "../../../src/protocol/checks.generated.js";
import { CHECKS_FILE, checksModuleText } from "../../../src/protocol/checks-source.js";
import { METHOD_SCHEMAS } from "../../../src/protocol/method-schemas.js";
import type { MethodName } from "../../../src/protocol/methods.js";

const methods = Object.keys(METHOD_SCHEMAS) as MethodName[];

/** Values near the schemas' shapes: objects with the protocol's field names, wrong types, bad strings. */
const fieldNames = ["networkId", "prefix", "vlan", "mac", "vmUuid", "uuid", "nics", "ipv6", "state", "kind", "path", "extra", "force"];
const anyValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.constantFrom("52:54:00:12:34:56", "zz", "2001:db8:1:1::/64", "2001:db8::/48", "kernel", "disk", "protected", ""),
    fc.integer({ min: -5, max: 5000 }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("value"), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom(...fieldNames), tie("value"), { maxKeys: 5 }),
  ),
})).value;

describe("src/protocol/checks.generated.ts", () => {
  it("is exactly what `npm run gen:checks` generates from src/protocol/method-schemas.ts", () => {
    const committed = readFileSync(new URL(`../../../${CHECKS_FILE}`, import.meta.url), "utf8");
    expect(committed, "run `npm run gen:checks` and commit the result").toBe(checksModuleText());
  });

  it("accepts and refuses what TypeBox's own compiled checks do, and its schemas explain failures the same way", () => {
    const compiled = new Map(
      methods.flatMap((method) => [
        [`${method}/params`, TypeCompiler.Compile(METHOD_SCHEMAS[method].params as TSchema)],
        [`${method}/result`, TypeCompiler.Compile(METHOD_SCHEMAS[method].result as TSchema)],
      ]),
    );
    const embedded = methodSchemas();
    let refused = 0;
    fc.assert(
      fc.property(fc.constantFrom(...methods), fc.constantFrom("params", "result"), anyValue, (method, part, value) => {
        const reference = compiled.get(`${method}/${part}`);
        const generated = part === "params" ? PARAMS_CHECKS[method] : RESULT_CHECKS[method];
        expect(generated(value)).toBe(reference?.Check(value));
        if (generated(value)) return;
        refused += 1;
        const expected = Errors(METHOD_SCHEMAS[method][part] as TSchema, value).First();
        const actual = Errors(embedded[method][part] as TSchema, value).First();
        expect([actual?.path, actual?.message, actual?.schema.pattern]).toEqual([
          expected?.path,
          expected?.message,
          expected?.schema.pattern,
        ]);
      }),
      { numRuns: 3000 },
    );
    expect(refused).toBeGreaterThan(100);
  });
});

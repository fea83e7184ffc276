import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeFrame, MAX_FRAME_DEPTH, RPC_ERROR_MEANINGS, RPC_ERRORS } from "../../../src/protocol/index.js";

const options = { maxBytes: 4096 };
const decode = (text: string) => decodeFrame(text, false, options);

describe("decodeFrame", () => {
  it("reads requests, notifications, results and errors", () => {
    expect(decode('{"jsonrpc":"2.0","id":7,"method":"vm.list","params":{}}')).toEqual({
      kind: "request",
      id: 7,
      method: "vm.list",
      params: {},
    });
    expect(decode('{"jsonrpc":"2.0","method":"x"}')).toEqual({ kind: "notification", method: "x", params: {} });
    expect(decode('{"jsonrpc":"2.0","id":"a","result":null}')).toEqual({ kind: "result", id: "a", result: null });
    expect(decode('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"m"}}')).toEqual({
      kind: "error",
      id: null,
      error: { code: -32700, message: "m" },
    });
  });

  it.each([
    ["invalid JSON", "{", RPC_ERRORS.parseError, "message", null],
    ["a batch", "[]", RPC_ERRORS.invalidRequest, "message", null],
    ["a scalar", "42", RPC_ERRORS.invalidRequest, "message", null],
    ["no jsonrpc member", '{"id":1,"method":"vm.list"}', RPC_ERRORS.invalidRequest, "jsonrpc", 1],
    ["jsonrpc 1.0", '{"jsonrpc":"1.0","id":1,"method":"vm.list"}', RPC_ERRORS.invalidRequest, "jsonrpc", 1],
    ["an object id", '{"jsonrpc":"2.0","id":{},"method":"vm.list"}', RPC_ERRORS.invalidRequest, "id", null],
    ["a numeric method", '{"jsonrpc":"2.0","id":2,"method":5}', RPC_ERRORS.invalidRequest, "method", 2],
    ["positional params", '{"jsonrpc":"2.0","id":3,"method":"vm.list","params":[1]}', RPC_ERRORS.invalidRequest, "params", 3],
    ["an extra member", '{"jsonrpc":"2.0","id":4,"method":"vm.list","extra":1}', RPC_ERRORS.invalidRequest, "extra", 4],
    ["neither method nor result", '{"jsonrpc":"2.0","id":5}', RPC_ERRORS.invalidRequest, "method", 5],
    ["a malformed error", '{"jsonrpc":"2.0","id":6,"error":{"code":"x"}}', RPC_ERRORS.invalidRequest, "error", 6],
  ])("answers %s with its documented code and field", (_name, text, code, field, id) => {
    const message = decode(text);
    expect(message).toMatchObject({ kind: "invalid", id, error: { code, data: { field } } });
  });

  it("refuses binary frames and oversized frames, naming the limit", () => {
    expect(decodeFrame(Buffer.from("{}"), true, options)).toMatchObject({ kind: "invalid", error: { code: RPC_ERRORS.parseError } });
    const big = decodeFrame(Buffer.alloc(5000, 0x20), false, options);
    expect(big).toMatchObject({ kind: "invalid", error: { code: RPC_ERRORS.invalidRequest, data: { field: "message" } } });
    expect(big.kind === "invalid" && big.error.message).toMatch(/5000 bytes exceeds the limit of 4096/);
  });

  // The parser faces the network: whatever arrives, it must classify without throwing, and an
  // invalid verdict must carry a documented code and name a field.
  it("never throws and always yields a documented verdict (fuzzed)", () => {
    const jsonish = fc.oneof(
      fc.string(),
      fc.json(),
      fc
        .record(
          {
            jsonrpc: fc.oneof(fc.constant("2.0"), fc.string()),
            id: fc.oneof(fc.integer(), fc.string(), fc.constant(null), fc.object()),
            method: fc.oneof(fc.constantFrom("vm.list", "nic.plug", ""), fc.integer()),
            params: fc.oneof(fc.object(), fc.array(fc.integer()), fc.constant(null)),
            result: fc.jsonValue(),
            error: fc.oneof(fc.record({ code: fc.integer(), message: fc.string() }), fc.anything()),
          },
          { requiredKeys: [] },
        )
        .map((value) => JSON.stringify(value)),
    );
    fc.assert(
      fc.property(jsonish, fc.boolean(), (text, binary) => {
        const message = decodeFrame(text, binary, options);
        if (message.kind === "invalid") {
          expect(Object.keys(RPC_ERROR_MEANINGS)).toContain(String(message.error.code));
          expect(typeof message.error.data?.field).toBe("string");
        } else {
          expect(binary).toBe(false);
        }
      }),
      { numRuns: 2000 },
    );
  });

  // Issue 17, finding 1: one ~8 KB frame of nested brackets in id, method or jsonrpc overflowed
  // the stack (describe() → JSON.stringify) and killed either process.
  it.each([
    ["id", (deep: string) => `{"jsonrpc":"2.0","id":${deep},"method":"vm.list","params":{}}`, null],
    ["method", (deep: string) => `{"jsonrpc":"2.0","id":"d1","method":${deep},"params":{}}`, "d1"],
    ["jsonrpc", (deep: string) => `{"jsonrpc":${deep},"id":"d2","method":"vm.list"}`, "d2"],
    ["params.networkId", (deep: string) => `{"jsonrpc":"2.0","id":"d3","method":"network.remove","params":{"networkId":${deep}}}`, "d3"],
    ["result", (deep: string) => `{"jsonrpc":"2.0","id":"d4","result":${deep}}`, "d4"],
  ])("answers a frame nested thousands deep in %s with -32600, keeping a readable id", (_member, frame, id) => {
    const deep = `${"[".repeat(8000)}${"]".repeat(8000)}`;
    const message = decodeFrame(frame(deep), false, { maxBytes: 1024 * 1024 });
    expect(message).toMatchObject({ kind: "invalid", id, error: { code: RPC_ERRORS.invalidRequest, data: { field: "message" } } });
    expect(message.kind === "invalid" && message.error.message).toMatch(`deeper than ${MAX_FRAME_DEPTH} levels`);
  });

  it("accepts nesting up to the limit", () => {
    const nested = `${"[".repeat(MAX_FRAME_DEPTH - 1)}${"]".repeat(MAX_FRAME_DEPTH - 1)}`;
    expect(decodeFrame(`{"jsonrpc":"2.0","id":1,"result":${nested}}`, false, options)).toMatchObject({ kind: "result", id: 1 });
  });

  it("refuses a text frame that is not UTF-8 with -32700", () => {
    const bytes = Buffer.from([...Buffer.from('{"jsonrpc":"2.0","id":1,"method":"'), 0xc3, 0x28, ...Buffer.from('"}')]);
    expect(decodeFrame(bytes, false, options)).toMatchObject({
      kind: "invalid",
      error: { code: RPC_ERRORS.parseError, data: { field: "message" } },
    });
  });

  // Whatever bytes, depth, width or size arrive, the verdict comes back without throwing.
  it("never throws for frames of any depth, width, size or encoding (fuzzed)", () => {
    const nesting = fc
      .tuple(
        fc.integer({ min: 0, max: 5000 }),
        fc.constantFrom("[", '{"a":'),
        fc.constantFrom("id", "method", "jsonrpc", "params", "result", "error"),
      )
      .map(([depth, open, member]) => {
        const close = open === "[" ? "]" : "}";
        const deep = `${open.repeat(depth)}1${close.repeat(depth)}`;
        return `{"jsonrpc":"2.0","id":"f","method":"vm.list",${JSON.stringify(member)}:${deep}}`;
      });
    const wide = fc
      .integer({ min: 0, max: 20_000 })
      .map((width) => `{"jsonrpc":"2.0","id":1,"method":"vm.list","params":{"a":[${"0,".repeat(width)}0]}}`);
    const bytes = fc.uint8Array({ maxLength: 2048 }).map((array) => Buffer.from(array));
    fc.assert(
      fc.property(fc.oneof(nesting, wide, bytes, fc.string({ unit: "binary" })), fc.boolean(), (frame, binary) => {
        const message = decodeFrame(frame, binary, { maxBytes: 64 * 1024 });
        if (message.kind === "invalid") expect(Object.keys(RPC_ERROR_MEANINGS)).toContain(String(message.error.code));
      }),
      { numRuns: 500 },
    );
  });
});

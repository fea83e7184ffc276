import { RPC_ERROR_MEANINGS } from "./error-codes.js";
import { METHOD_SCHEMAS } from "./method-schemas.js";
import { METHODS, SUBPROTOCOL } from "./methods.js";
import { RpcError, RpcRequest, RpcResponse } from "./schemas.js";

/**
 * The published JSON Schema (draft 2020-12) of protocol v6agent/1, built from the same TypeBox
 * schemas the agent validates with. `npm run gen:schema` writes it to docs/protocol.schema.json;
 * a unit test fails when the committed file differs.
 */
export function protocolSchemaDocument(): Record<string, unknown> {
  const defs: Record<string, unknown> = {
    Request: plain(RpcRequest),
    Response: plain(RpcResponse),
    Error: plain(RpcError),
  };
  const methods: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(METHODS)) {
    const stem = name.replace(/(^|\.)([a-z])/g, (_match, _dot: string, letter: string) => letter.toUpperCase());
    defs[`${stem}Params`] = plain(METHOD_SCHEMAS[name as keyof typeof METHOD_SCHEMAS].params);
    defs[`${stem}Result`] = plain(METHOD_SCHEMAS[name as keyof typeof METHOD_SCHEMAS].result);
    methods[name] = {
      direction: spec.direction,
      summary: spec.summary,
      params: { $ref: `#/$defs/${stem}Params` },
      result: { $ref: `#/$defs/${stem}Result` },
    };
  }
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $id: "https://v6agent.invalid/protocol/v6agent-1.schema.json",
    title: `v6agent management protocol (${SUBPROTOCOL})`,
    description: `JSON-RPC 2.0 over WebSocket, subprotocol ${SUBPROTOCOL} (protocol version 1). See docs/protocol.md.`,
    "x-subprotocol": SUBPROTOCOL,
    "x-methods": methods,
    "x-error-codes": Object.fromEntries(Object.entries(RPC_ERROR_MEANINGS).map(([code, meaning]) => [code, meaning])),
    $defs: defs,
  };
}

/** The schema as plain JSON (TypeBox keeps its own markers under symbol keys, which JSON drops). */
function plain(schema: unknown): unknown {
  return JSON.parse(JSON.stringify(schema));
}

export function protocolSchemaText(): string {
  return `${JSON.stringify(protocolSchemaDocument(), null, 2)}\n`;
}

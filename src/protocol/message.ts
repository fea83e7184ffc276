import { isUtf8 } from "node:buffer";
import { RPC_ERRORS, rpcError } from "./error-codes.js";
import type { RequestId, RpcErrorObject } from "./schemas.js";

/**
 * The frame parser shared by both ends. It never throws: every input becomes either a message or
 * an `invalid` verdict carrying the error to answer with (and the request id when one could be
 * read, so the peer can match it). Batches are not part of v6agent/1.
 *
 * Size, encoding and depth are bounded before anything recurses into the value: JSON.parse is
 * iterative in V8, but JSON.stringify, structuredClone and the schema checks are not, and one
 * 8 KB frame of nested brackets used to overflow the stack of either process (issue 17).
 */
export type Incoming =
  | { kind: "request"; id: RequestId; method: string; params: unknown }
  | { kind: "notification"; method: string; params: unknown }
  | { kind: "result"; id: RequestId; result: unknown }
  | { kind: "error"; id: RequestId | null; error: RpcErrorObject }
  | { kind: "invalid"; id: RequestId | null; error: RpcErrorObject };

const REQUEST_MEMBERS = new Set(["jsonrpc", "id", "method", "params"]);
const RESULT_MEMBERS = new Set(["jsonrpc", "id", "result"]);
const ERROR_MEMBERS = new Set(["jsonrpc", "id", "error"]);

/** Deepest nesting of arrays and objects a frame may have (the deepest v6agent/1 message needs 7). */
export const MAX_FRAME_DEPTH = 32;

export interface DecodeOptions {
  /** Frames longer than this are refused with -32600 (the transport's hard cap closes with 1009 beyond it). */
  maxBytes: number;
}

export function decodeFrame(data: Buffer | ArrayBuffer | Buffer[] | string, isBinary: boolean, options: DecodeOptions): Incoming {
  if (isBinary) {
    return invalid(null, RPC_ERRORS.parseError, "binary frames are not accepted: send JSON text frames", "message");
  }
  const text = typeof data === "string" ? data : toBuffer(data);
  const size = typeof text === "string" ? Buffer.byteLength(text) : text.length;
  if (size > options.maxBytes) {
    return invalid(null, RPC_ERRORS.invalidRequest, `message of ${size} bytes exceeds the limit of ${options.maxBytes} bytes`, "message");
  }
  // The transports skip their own UTF-8 check (it would close the connection): refused here instead.
  if (typeof text !== "string" && !isUtf8(text)) {
    return invalid(null, RPC_ERRORS.parseError, "the frame is not valid UTF-8 text", "message");
  }
  let value: unknown;
  try {
    value = JSON.parse(typeof text === "string" ? text : text.toString("utf8"));
  } catch (error) {
    return invalid(null, RPC_ERRORS.parseError, `invalid JSON: ${(error as Error).message}`, "message");
  }
  if (nestedDeeperThan(value, MAX_FRAME_DEPTH)) {
    // The id is still worth reading when it is a plain value, so the sender can match the answer.
    const rawId = value !== null && typeof value === "object" && !Array.isArray(value) ? (value as { id?: unknown }).id : undefined;
    const id = typeof rawId === "string" || typeof rawId === "number" ? readId(rawId) : undefined;
    return invalid(
      id?.ok === true ? (id.id ?? null) : null,
      RPC_ERRORS.invalidRequest,
      `the frame nests arrays and objects deeper than ${MAX_FRAME_DEPTH} levels`,
      "message",
    );
  }
  return decodeValue(value);
}

/** Whether `value` nests arrays/objects deeper than `limit`, found without recursion. */
function nestedDeeperThan(value: unknown, limit: number): boolean {
  if (value === null || typeof value !== "object") return false;
  const stack: { value: object; depth: number }[] = [{ value, depth: 1 }];
  for (let entry = stack.pop(); entry !== undefined; entry = stack.pop()) {
    if (entry.depth > limit) return true;
    const children = Array.isArray(entry.value) ? entry.value : Object.values(entry.value);
    for (const child of children) {
      if (child !== null && typeof child === "object") stack.push({ value: child, depth: entry.depth + 1 });
    }
  }
  return false;
}

/** Classifies a parsed JSON value as a JSON-RPC 2.0 message (its depth must be bounded: see decodeFrame). */
function decodeValue(value: unknown): Incoming {
  if (Array.isArray(value))
    return invalid(null, RPC_ERRORS.invalidRequest, "batches are not supported by v6agent/1: send one message per frame", "message");
  if (value === null || typeof value !== "object") {
    return invalid(
      null,
      RPC_ERRORS.invalidRequest,
      `expected a JSON-RPC 2.0 object, got ${value === null ? "null" : typeof value}`,
      "message",
    );
  }
  const message = value as Record<string, unknown>;
  const idCheck = readId(message.id);
  const id = idCheck.ok ? idCheck.id : undefined;
  if (message.jsonrpc !== "2.0") {
    return invalid(id ?? null, RPC_ERRORS.invalidRequest, `jsonrpc must be "2.0", got ${describe(message.jsonrpc)}`, "jsonrpc");
  }
  if (!idCheck.ok) return invalid(null, RPC_ERRORS.invalidRequest, idCheck.message, "id");
  if ("method" in message) {
    const extra = Object.keys(message).find((key) => !REQUEST_MEMBERS.has(key));
    if (extra !== undefined) return invalid(id ?? null, RPC_ERRORS.invalidRequest, `unknown member in a request`, extra);
    if (typeof message.method !== "string" || message.method.length === 0 || message.method.length > 64) {
      return invalid(id ?? null, RPC_ERRORS.invalidRequest, `method must be a non-empty string, got ${describe(message.method)}`, "method");
    }
    const params = message.params;
    if (params !== undefined && (params === null || typeof params !== "object" || Array.isArray(params))) {
      return invalid(
        id ?? null,
        RPC_ERRORS.invalidRequest,
        `params must be an object (by-name parameters), got ${describe(params)}`,
        "params",
      );
    }
    if (id === undefined) return { kind: "notification", method: message.method, params: params ?? {} };
    return { kind: "request", id, method: message.method, params: params ?? {} };
  }
  if ("result" in message) {
    const extra = Object.keys(message).find((key) => !RESULT_MEMBERS.has(key));
    if (extra !== undefined) return invalid(id ?? null, RPC_ERRORS.invalidRequest, "unknown member in a response", extra);
    if (id === undefined) return invalid(null, RPC_ERRORS.invalidRequest, "a response needs the id of its request", "id");
    return { kind: "result", id, result: message.result };
  }
  if ("error" in message) {
    const extra = Object.keys(message).find((key) => !ERROR_MEMBERS.has(key));
    if (extra !== undefined) return invalid(id ?? null, RPC_ERRORS.invalidRequest, "unknown member in an error response", extra);
    const error = message.error as Record<string, unknown> | null;
    if (error === null || typeof error !== "object" || !Number.isInteger(error.code) || typeof error.message !== "string") {
      return invalid(id ?? null, RPC_ERRORS.invalidRequest, "error must be an object with an integer code and a string message", "error");
    }
    const data = error.data !== null && typeof error.data === "object" ? (error.data as RpcErrorObject["data"]) : undefined;
    const errorObject: RpcErrorObject = { code: error.code as number, message: error.message };
    if (data !== undefined) errorObject.data = data;
    return { kind: "error", id: id ?? null, error: errorObject };
  }
  return invalid(id ?? null, RPC_ERRORS.invalidRequest, "a message needs a method (request) or a result or error (response)", "method");
}

export function encodeRequest(id: RequestId, method: string, params: unknown): string {
  return JSON.stringify({ jsonrpc: "2.0", id, method, params });
}

export function encodeResult(id: RequestId, result: unknown): string {
  return JSON.stringify({ jsonrpc: "2.0", id, result: result === undefined ? null : result });
}

export function encodeError(id: RequestId | null, error: RpcErrorObject): string {
  return JSON.stringify({ jsonrpc: "2.0", id, error });
}

type IdCheck = { ok: true; id: RequestId | undefined } | { ok: false; message: string };

function readId(id: unknown): IdCheck {
  if (id === undefined) return { ok: true, id: undefined };
  if (typeof id === "string" && id.length > 0 && id.length <= 128) return { ok: true, id };
  if (typeof id === "number" && Number.isSafeInteger(id)) return { ok: true, id };
  if (id === null) return { ok: true, id: undefined };
  return { ok: false, message: `id must be a string of 1 to 128 characters or an integer, got ${describe(id)}` };
}

function invalid(id: RequestId | null, code: number, message: string, field: string): Incoming {
  return { kind: "invalid", id, error: rpcError(code as -32600, field === "message" ? message : `${field}: ${message}`, field) };
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

function toBuffer(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

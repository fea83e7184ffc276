import { V6Error } from "../errors.js";
import { fromRpcError, RPC_ERRORS, rpcError } from "./error-codes.js";
import { decodeFrame, encodeError, encodeRequest, encodeResult, type Incoming } from "./message.js";
import { isMethodName, METHODS } from "./methods.js";
import type { RequestId, RpcErrorObject } from "./schemas.js";

/**
 * One end of a v6agent/1 JSON-RPC conversation, the same class on both sides: it owns the ids of
 * the requests it sends, their pending calls and timeouts, encodes responses, and dispatches
 * every incoming frame (requests and notifications to the handlers, answers to their pending
 * calls, malformed frames answered with their error).
 *
 * A peer outlives connections: `attach` gives it a transport, `detach` takes it away. The agent
 * fails its pending requests on detach (they belong to one connection); the management server
 * keeps them and sends them again, same ids, on the next attach (`resendOnAttach`), which the
 * agent answers from its journal when it already ran them.
 */
export interface PeerTransport {
  send(frame: string): void;
}

export interface IncomingRequest {
  id: RequestId;
  method: string;
  params: unknown;
  /** Bytes of the frame it came in (for budgets of what peers may make us keep). */
  size: number;
}

export interface PeerOptions {
  /** Prefix of the ids this peer gives its requests (`<prefix>-<n>`). */
  idPrefix: string;
  /** Which direction of METHODS this peer serves; other methods are answered -32601. */
  serves: "server-to-agent" | "agent-to-server";
  maxMessageBytes: number;
  /** Keep pending requests across detach and re-send them on attach (the server's calls). */
  resendOnAttach: boolean;
  /** Names the other side in timeout messages ("host-1", "the management server"). */
  remoteName: string;
  onRequest: (request: IncomingRequest) => void;
  onNotification?: (method: string) => void;
  /** An answer that matches no pending request (a late result, a duplicate, an error with id null). */
  onUnmatched?: (message: Incoming) => void;
  /** A frame refused as malformed (already answered). */
  onInvalid?: (error: RpcErrorObject) => void;
}

export interface RequestOptions {
  /** A chosen id (replays); default `<prefix>-<n>`. */
  id?: RequestId;
  /** Rejects with a V6Error "timeout" after this long; default: no timeout. */
  timeoutMs?: number;
  /**
   * Called with the result as it arrives, before any later frame is dispatched. A promise
   * continuation runs too late for state that later frames depend on: frames that came in the
   * same chunk are dispatched first.
   */
  onResult?: (result: unknown) => void;
}

interface Pending {
  method: string;
  frame: string;
  onResult: ((result: unknown) => void) | undefined;
  resolve: (result: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

export class RpcPeer {
  private readonly options: PeerOptions;
  private readonly pending = new Map<string, Pending>();
  private transport: PeerTransport | undefined;
  private nextId = 0;

  constructor(options: PeerOptions) {
    this.options = options;
  }

  get attached(): boolean {
    return this.transport !== undefined;
  }

  /** Requests sent (or waiting to be) and not yet answered. */
  get pendingCount(): number {
    return this.pending.size;
  }

  attach(transport: PeerTransport): void {
    this.transport = transport;
    if (this.options.resendOnAttach) for (const call of this.pending.values()) transport.send(call.frame);
  }

  /** Takes the transport away; without resendOnAttach the pending requests fail with `reason`. */
  detach(reason: string): void {
    this.transport = undefined;
    if (!this.options.resendOnAttach) this.rejectAll(new V6Error("unavailable", `connection lost: ${reason}`));
  }

  /** Fails every pending request (shutdown, or the remote's state was lost). */
  rejectAll(error: Error): void {
    const calls = [...this.pending.values()];
    this.pending.clear();
    for (const call of calls) {
      clearTimeout(call.timer);
      call.reject(error);
    }
  }

  /** Sends a request (now if attached, else on the next attach when resendOnAttach); resolves with the raw result. */
  request(method: string, params: unknown, options: RequestOptions = {}): Promise<unknown> {
    const id = options.id ?? `${this.options.idPrefix}-${++this.nextId}`;
    const key = pendingKey(id);
    if (this.pending.has(key))
      return Promise.reject(new V6Error("conflict", `a call with id ${String(id)} is already pending`, { field: "id" }));
    return new Promise((resolve, reject) => {
      const frame = encodeRequest(id, method, params);
      const timeoutMs = options.timeoutMs;
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              this.pending.delete(key);
              reject(
                new V6Error("timeout", `${method} to ${this.options.remoteName} got no result within ${timeoutMs} ms (id ${String(id)})`),
              );
            }, timeoutMs);
      this.pending.set(key, { method, frame, onResult: options.onResult, resolve, reject, timer });
      this.transport?.send(frame);
    });
  }

  respond(id: RequestId, result: unknown): void {
    this.transport?.send(encodeResult(id, result));
  }

  respondError(id: RequestId | null, error: RpcErrorObject): void {
    this.transport?.send(encodeError(id, error));
  }

  /** Handles one incoming frame; never throws for anything the remote sends. */
  receive(data: Buffer | string, isBinary: boolean): void {
    const message = decodeFrame(data, isBinary, { maxBytes: this.options.maxMessageBytes });
    switch (message.kind) {
      case "invalid":
        this.options.onInvalid?.(message.error);
        this.respondError(message.id, message.error);
        return;
      case "notification":
        // v6agent/1 defines no notifications; JSON-RPC forbids answering one.
        this.options.onNotification?.(message.method);
        return;
      case "result":
      case "error": {
        const key = message.id === null ? undefined : pendingKey(message.id);
        const call = key === undefined ? undefined : this.pending.get(key);
        if (key === undefined || call === undefined) {
          this.options.onUnmatched?.(message);
          return;
        }
        this.pending.delete(key);
        clearTimeout(call.timer);
        if (message.kind === "result") {
          call.onResult?.(message.result);
          call.resolve(message.result);
        } else call.reject(fromRpcError(message.error));
        return;
      }
      case "request": {
        const { id, method } = message;
        if (!isMethodName(method) || METHODS[method].direction !== this.options.serves) {
          this.respondError(id, rpcError(RPC_ERRORS.methodNotFound, `method: unknown method ${JSON.stringify(method)}`, "method"));
          return;
        }
        this.options.onRequest({ id, method, params: message.params, size: frameSize(data) });
        return;
      }
    }
  }
}

/** Map key of a JSON-RPC id: 1 and "1" are different ids. */
export function pendingKey(id: RequestId): string {
  return typeof id === "number" ? `n${id}` : `s${id}`;
}

function frameSize(data: Buffer | string): number {
  return typeof data === "string" ? Buffer.byteLength(data) : data.length;
}

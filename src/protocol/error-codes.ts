import { type ErrorCode, V6Error } from "../errors.js";
import type { RpcErrorObject } from "./schemas.js";

/**
 * JSON-RPC error codes of protocol v6agent/1 (docs/protocol.md lists them for implementers).
 * JSON-RPC's own codes for malformed messages, then ours in the implementation-defined
 * -32000..-32099 range, one per V6Error code so a failure keeps its meaning across the wire.
 */
export const RPC_ERRORS = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
  notFound: -32001,
  conflict: -32002,
  busy: -32003,
  timeout: -32004,
  hypervisorFailure: -32005,
  firewallFailure: -32006,
  hostFailure: -32007,
  unavailable: -32008,
  notImplemented: -32009,
  /** The agent restarted while the command ran: its effect is unknown; reissue with a new id or send state.sync. */
  interrupted: -32010,
  /** The agent's journal was damaged: it cannot prove this id new, so it did not run it (docs/protocol.md). */
  journalDamaged: -32011,
  /** agent.hello named a host other than the one the connection's credentials belong to. */
  unauthorized: -32012,
} as const;

export type RpcErrorCode = (typeof RPC_ERRORS)[keyof typeof RPC_ERRORS];

const BY_V6_CODE: Record<ErrorCode, RpcErrorCode> = {
  invalid_argument: RPC_ERRORS.invalidParams,
  not_found: RPC_ERRORS.notFound,
  conflict: RPC_ERRORS.conflict,
  hypervisor_failure: RPC_ERRORS.hypervisorFailure,
  firewall_failure: RPC_ERRORS.firewallFailure,
  host_failure: RPC_ERRORS.hostFailure,
  busy: RPC_ERRORS.busy,
  timeout: RPC_ERRORS.timeout,
  unavailable: RPC_ERRORS.unavailable,
  not_implemented: RPC_ERRORS.notImplemented,
  internal: RPC_ERRORS.internalError,
};

/** One line per code for docs/protocol.md and the schema document. */
export const RPC_ERROR_MEANINGS: Record<RpcErrorCode, string> = {
  [-32700]: "Parse error: the frame is not JSON text (also: a binary frame). `data.field` is `message`.",
  [-32600]: "Invalid request: not a JSON-RPC 2.0 request/response object, or larger than the message limit; `data.field` names the member.",
  [-32601]: "Method not found: `data.field` is `method`.",
  [-32602]:
    "Invalid params: wrong type, missing or extra field, malformed MAC, prefix not /64, ...; `data.field` is the path, e.g. `params.prefix`.",
  [-32603]: "Internal error in the agent.",
  [-32001]: "Not found: the VM, NIC or network named in `data.field` does not exist.",
  [-32002]:
    "Conflict: the request contradicts existing state (e.g. the MAC is on another VM); `data.field` `id`: the id was used before for a different request; `params.hostId` in reply to agent.hello: an agent with that host id is already connected.",
  [-32003]: "Busy: too many commands queued; retry later with the same id.",
  [-32004]: "Timeout: the command exceeded the per-command timeout; its effect may be partial (send state.sync).",
  [-32005]: "Hypervisor failure: libvirt or XAPI refused or failed.",
  [-32006]: "Firewall failure: the port policy could not be applied; nothing was plugged.",
  [-32007]: "Host failure: a host command (ip, sysctl, ...) failed.",
  [-32008]: "Unavailable: a dependency (hypervisor connection) is down; retry later.",
  [-32009]: "Not implemented on this host (e.g. vm.deploy on XenServer).",
  [-32010]: "Interrupted: the agent restarted while the command ran; its effect is unknown. Reissue with a new id or send state.sync.",
  [-32011]:
    "Journal damaged: the agent's command journal was damaged, so it cannot prove this id was never run; it did not run it. Acknowledge the damage in the agent.hello answer, then reissue with a new id or send state.sync.",
  [-32012]:
    "Unauthorized: agent.hello's hostId is not the host the connection's client certificate or per-host token names. `data.field` is `params.hostId`.",
};

/** The V6Error code carried in `data.reason` for codes that have no V6Error counterpart. */
const REASON_BY_RPC_CODE: Partial<Record<RpcErrorCode, string>> = {
  [-32700]: "parse_error",
  [-32600]: "invalid_request",
  [-32601]: "method_not_found",
  [-32010]: "interrupted",
  [-32011]: "journal_damaged",
  [-32012]: "unauthorized",
};

/** Builds a protocol error object; `field` is a path from the message root (`params.nics[0].mac`). */
export function rpcError(code: RpcErrorCode, message: string, field?: string, reason?: string): RpcErrorObject {
  const data: { reason: string; field?: string } = { reason: reason ?? REASON_BY_RPC_CODE[code] ?? reasonFor(code) };
  if (field !== undefined) data.field = field;
  return { code, message, data };
}

/** Maps any thrown value to a protocol error: V6Errors keep code, message and field; the rest is internal. */
export function toRpcError(error: unknown): RpcErrorObject {
  if (error instanceof V6Error) return rpcError(BY_V6_CODE[error.code], error.message, error.field, error.code);
  return rpcError(
    RPC_ERRORS.internalError,
    `internal error: ${error instanceof Error ? error.message : String(error)}`,
    undefined,
    "internal",
  );
}

/** Turns a protocol error received from the peer back into a V6Error (the management server's view). */
export function fromRpcError(error: RpcErrorObject): V6Error {
  const v6Code = (Object.entries(BY_V6_CODE).find(([, rpc]) => rpc === error.code)?.[0] ?? "internal") as ErrorCode;
  const field = typeof error.data?.field === "string" ? error.data.field : undefined;
  return new RemoteError(v6Code, error, field);
}

/** A V6Error that came over the wire: keeps the exact JSON-RPC code and data. */
export class RemoteError extends V6Error {
  readonly rpc: RpcErrorObject;
  constructor(code: ErrorCode, rpc: RpcErrorObject, field: string | undefined) {
    super(code, rpc.message, field === undefined ? undefined : { field });
    this.name = "RemoteError";
    this.rpc = rpc;
  }
}

function reasonFor(code: RpcErrorCode): string {
  return (Object.entries(BY_V6_CODE).find(([, rpc]) => rpc === code)?.[0] as string | undefined) ?? "internal";
}

export { fromRpcError, RemoteError, RPC_ERROR_MEANINGS, RPC_ERRORS, type RpcErrorCode, rpcError, toRpcError } from "./error-codes.js";
export {
  type DecodeOptions,
  decodeFrame,
  encodeError,
  encodeRequest,
  encodeResult,
  type Incoming,
  MAX_FRAME_DEPTH,
} from "./message.js";
export {
  type AgentMethod,
  isMethodName,
  METHODS,
  type MethodName,
  type MethodParams,
  type MethodResult,
  type ServerMethod,
  SUBPROTOCOL,
} from "./methods.js";
export { fieldPath, parseParams, parseResult } from "./params.js";
export { type IncomingRequest, type PeerOptions, type PeerTransport, pendingKey, type RequestOptions, RpcPeer } from "./peer.js";
export type {
  AgentHeartbeatParams,
  AgentHelloParams,
  AgentHelloResult,
  HostDiagnoseResult,
  NetworkEnsureParams,
  ObservedDuid,
  RequestId,
  RpcErrorObject,
  StateSyncParams,
  VifReport,
  VifState,
} from "./schemas.js";

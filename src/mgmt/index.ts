export { type CredentialKind, type HostTokens, parseHostTokens, tokenHash } from "./agent-auth.js";
export { type HttpApiOptions, ManagementHttpApi } from "./http-api.js";
export {
  type AgentInfo,
  type CallOptions,
  ManagementServer,
  type ManagementServerEvents,
  type ManagementServerOptions,
} from "./management-server.js";
export { type Report, ReportLog, type ReportQuery } from "./report-log.js";

export { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from "../backoff.js";
export {
  AgentChannel,
  type AgentChannelOptions,
  type ChannelEvents,
  type ChannelLimits,
  type ChannelLiveness,
  type ChannelState,
  type CommandContext,
  type CommandHandler,
} from "./agent-channel.js";
export { CommandScheduler, EXCLUSIVE } from "./command-scheduler.js";
export { type ChannelTls, checkServerUrl, isLoopbackHost } from "./connection-options.js";
export { requestDigest } from "./request-digest.js";
export { defaultResourceKey } from "./resource-key.js";
export { ResultStore, type StoredCommand, type StoredResponse } from "./result-store.js";

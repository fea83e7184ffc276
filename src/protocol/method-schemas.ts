import * as S from "./schemas.js";

/**
 * The TypeBox schemas of every method's params and result. The agent does not load this module:
 * it validates with the checks generated from it (./checks.generated.ts) and reaches for these
 * only to explain a value that failed. The management server, the published JSON Schema and the
 * tests use it directly.
 */
export const METHOD_SCHEMAS = {
  "network.ensure": { params: S.NetworkEnsureParams, result: S.NetworkEnsureResult },
  "network.remove": { params: S.NetworkRemoveParams, result: S.NetworkRemoveResult },
  "nic.plug": { params: S.NicPlugParams, result: S.NicPlugResult },
  "nic.unplug": { params: S.NicUnplugParams, result: S.NicUnplugResult },
  "vm.deploy": { params: S.VmDeployParams, result: S.VmDeployResult },
  "vm.stop": { params: S.VmStopParams, result: S.VmStopResult },
  "vm.list": { params: S.VmListParams, result: S.VmListResult },
  "state.sync": { params: S.StateSyncParams, result: S.StateSyncResult },
  "host.diagnose": { params: S.HostDiagnoseParams, result: S.HostDiagnoseResult },
  "agent.hello": { params: S.AgentHelloParams, result: S.AgentHelloResult },
  "agent.heartbeat": { params: S.AgentHeartbeatParams, result: S.AgentHeartbeatResult },
  "agent.ping": { params: S.AgentPingParams, result: S.AgentPingResult },
  "vif.report": { params: S.VifReportParams, result: S.VifReportResult },
} as const;

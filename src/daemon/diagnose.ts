import type { DesiredState } from "../agent/desired-state.js";
import { hostView } from "../agent/host-view.js";
import type { IdentityLookup } from "../agent/vif-report.js";
import { type DiagReport, fail } from "../diag/check.js";
import type { HypervisorProbe } from "../diag/hypervisor.js";
import type { Hypervisor } from "../hypervisor/hypervisor.js";
import { channelSecurity } from "./channel-security.js";
import type { HypervisorConfig } from "./config.js";
import type { AgentParts } from "./parts.js";

/**
 * `host.diagnose` and `v6agent diag`: host checks plus desired-versus-live for this agent. The
 * daemon passes its connected hypervisor; `v6agent diag` passes an unconnected one with
 * `connect: true` (the check then logs in, or reports why it cannot). diag gets plain data:
 * the hypervisor's VMs become the agent's plan here, with the core's own planner.
 */
export async function diagnoseWith(
  parts: Pick<AgentParts, "config" | "firewall" | "backend">,
  desired: () => DesiredState,
  hypervisor?: { backend: Hypervisor; connect: boolean },
  /** Why the desired state could not be read (the agent then leaves the live rules alone), if so. */
  stateProblem: () => string | undefined = () => undefined,
  /** The DHCPv6 identity each port's guest sends (the daemon's evidence, or its saved file for `v6agent diag`). */
  identity?: IdentityLookup,
): Promise<DiagReport> {
  // Loaded on the first host.diagnose: the daemon otherwise never needs the checks in memory.
  const [{ agentChecks }, { diagnose }, { hypervisorCheck }] = await Promise.all([
    import("../diag/agent-checks.js"),
    import("../diag/diagnose.js"),
    import("../diag/hypervisor.js"),
  ]);
  const config = parts.config;
  const management = config.management;
  return diagnose({
    backend: parts.firewall.backend,
    netns: config.netns,
    management: management.servers.map((url) => ({
      url,
      caFile: management.caFile,
      certFile: management.certFile,
      keyFile: management.keyFile,
      token: channelSecurity(management).token,
    })),
    agentChecks: async () => {
      const probe =
        hypervisor === undefined
          ? undefined
          : await hypervisorCheck(hypervisorProbe(config.hypervisor, hypervisor.backend, hypervisor.connect));
      await probe?.close();
      const state = desired();
      const view = hostView(state, probe?.vms ?? [], parts.backend.guestPortPatterns, identity);
      const networks = state.networks.map((network) => ({ ...network, prefix: network.network.cidr }));
      const rulesLive = (await ownRules(parts.firewall.backend, config.netns)).length > 0;
      const result = await agentChecks({ ...view, networks, firewall: parts.firewall, rulesLive, netns: config.netns });
      const problem = stateProblem();
      const stateCheck = problem === undefined ? [] : [fail("agent.state", problem, STATE_FIX)];
      return { checks: [...(probe === undefined ? [] : [probe.check]), ...stateCheck, ...result.checks], vifs: result.vifs };
    },
  });
}

/** This backend's own rules wherever they are, found the way the other backend finds them. */
async function ownRules(backend: "nft" | "xtables", netns: string | undefined): Promise<string[]> {
  if (backend === "nft") return (await import("../firewall/nft/leftovers.js")).nftLeftovers(netns);
  return (await import("../firewall/xtables/leftovers.js")).xtablesLeftovers(netns);
}

const STATE_FIX =
  "the agent leaves the live rules as they are and refuses changes until the management server sends state.sync; or restore a good copy of the file and restart the agent";

/** Describes the configured hypervisor connection for diag's hypervisor check. */
export function hypervisorProbe(config: HypervisorConfig, backend: Hypervisor, connect: boolean): HypervisorProbe {
  if (config.kind === "kvm") {
    return {
      backend,
      connect,
      target: `libvirt ${config.uri}`,
      fix: `start libvirtd, or fix hypervisor.uri ('virsh -c ${config.uri} list' must work)`,
    };
  }
  return {
    backend,
    connect,
    target: `XAPI ${config.xapi.username}@${config.xapi.url}`,
    fix: "check hypervisor.xapi.url, username and passwordFile (and allowSelfSigned for a self-signed XAPI)",
  };
}

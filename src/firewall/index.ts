import { V6Error } from "../errors.js";
import type { Logger } from "../log.js";
import type { Firewall } from "./model.js";
import { NftFirewall } from "./nft/apply.js";
import { nftBridgeWorks } from "./nft/probe.js";
import { XtablesFirewall } from "./xtables/apply.js";

export type * from "./model.js";
export { dropPackets, dropReasons, zeroCounters } from "./model.js";
export { NftFirewall } from "./nft/apply.js";
export { nftBridgeWorks } from "./nft/probe.js";
export { validateBridge, validatePort, validateState } from "./validate.js";
export { XAPI_EBTABLES_LOCK, XtablesFirewall } from "./xtables/apply.js";

export interface FirewallOptions {
  /** `auto`: nftables when `nft` and its bridge family work, else ebtables/ip6tables. */
  backend: "auto" | "nft" | "xtables";
  /** Run every command inside this network namespace (tests and the lab). */
  netns?: string;
  logger?: Logger;
  /** xtables only: apply every batch under this file's fcntl lock (dom0: `XAPI_EBTABLES_LOCK`). */
  lockFile?: string;
}

/**
 * The configured backend. Creating one changes nothing; its first reconcile (the agent's, at
 * start) removes what the other backend of this agent left live (`Firewall.otherBackendRules`).
 */
export async function createFirewall(options: FirewallOptions): Promise<Firewall> {
  const common = { netns: options.netns, logger: options.logger };
  const xtables = { ...common, ...(options.lockFile === undefined ? {} : { lockFile: options.lockFile }) };
  switch (options.backend) {
    case "nft":
      return new NftFirewall(common);
    case "xtables":
      return XtablesFirewall.create(xtables);
    case "auto": {
      const backend = (await nftBridgeWorks(options.netns)) ? new NftFirewall(common) : await XtablesFirewall.create(xtables);
      options.logger?.info({ backend: backend.backend }, "firewall backend chosen");
      return backend;
    }
    default:
      throw new V6Error("invalid_argument", `backend: ${JSON.stringify(options.backend)} is not one of auto, nft, xtables`, {
        field: "backend",
      });
  }
}

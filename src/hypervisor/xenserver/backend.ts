import type { InterfaceName } from "../../addressing/index.js";
import type { Logger } from "../../log.js";
import type { HypervisorBackend } from "../backend.js";
import { XapiNetworkProvisioner } from "./xapi-networks.js";
import { XenServerHypervisor, type XenServerOptions } from "./xenserver-hypervisor.js";

export interface XenServerBackendOptions {
  xapi: Pick<XenServerOptions, "url" | "auth" | "allowSelfSigned">;
  uplink?: InterfaceName | undefined;
  /** The namespace holding dom0's side (tests and the lab). */
  netns?: string | undefined;
  logger: Logger;
}

/**
 * XenServer / XCP-ng through XAPI: XAPI networks and VLANs, devices xenopsd names itself
 * (`vif<domid>.<n>`, and `tap<domid>.<n>` for an HVM guest's emulated NIC). VMs come from the
 * cloud's templates, so `vm.deploy` is not offered.
 */
export function xenServerBackend(options: XenServerBackendOptions): HypervisorBackend {
  const hypervisor = new XenServerHypervisor({ ...options.xapi, logger: options.logger });
  return {
    hypervisor,
    networks: new XapiNetworkProvisioner(hypervisor, { uplink: options.uplink, netns: options.netns, logger: options.logger }),
    guestPortPatterns: ["vif*", "tap*"],
    deviceFor: () => undefined,
    capabilities: ["network.ensure", "nic.plug", "state.sync", "host.diagnose"],
  };
}

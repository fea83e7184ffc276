import { type InterfaceName, parseInterfaceName } from "../../addressing/index.js";
import { disableHostIpv6 } from "../../hostnet/index.js";
import type { Logger } from "../../log.js";
import type { NetworkProvisioner, NetworkSpec, ProvisionedNetwork } from "../network-provisioner.js";
import type { XenServerHypervisor } from "./xenserver-hypervisor.js";

/**
 * XenServer hosts carry shared networks as XAPI networks (a VLAN on the uplink PIF for tagged
 * ones); dom0's Linux bridge for it is what the firewall guards. The uplink device (or its VLAN
 * device `<uplink>.<vlan>`, as xapi names it in bridge mode) is the trusted port.
 *
 * XAPI networks are pool-wide objects other hosts may use, so `remove` leaves them in place;
 * only this host's firewall state for the bridge goes.
 */
export class XapiNetworkProvisioner implements NetworkProvisioner {
  constructor(
    private readonly hypervisor: XenServerHypervisor,
    private readonly options: { uplink?: InterfaceName; netns?: string; logger?: Logger },
  ) {}

  async ensure(spec: NetworkSpec): Promise<ProvisionedNetwork> {
    const network = await this.hypervisor.ensureSharedNetwork({
      prefix: spec.network.cidr,
      ...(spec.vlan === undefined ? {} : { vlan: spec.vlan }),
      ...(this.options.uplink === undefined ? {} : { uplink: this.options.uplink }),
    });
    const uplink = this.options.uplink;
    const trusted = uplink === undefined ? [] : [parseInterfaceName(spec.vlan === undefined ? uplink : `${uplink}.${spec.vlan}`, "uplink")];
    return { bridge: parseInterfaceName(network.bridge, "bridge"), trustedPorts: trusted };
  }

  async remove(spec: NetworkSpec & { bridge: InterfaceName }): Promise<void> {
    this.options.logger?.info({ network: spec.networkId, bridge: spec.bridge }, "XAPI network kept (pool-wide); host rules removed");
  }

  async preparePorts(devices: readonly string[]): Promise<void> {
    await disableHostIpv6(devices, this.options.netns === undefined ? {} : { netns: this.options.netns });
  }
}

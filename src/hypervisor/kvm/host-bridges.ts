import type { InterfaceName } from "../../addressing/index.js";
import { bridgeNameFor, disableHostIpv6, ensureBridge, removeBridge } from "../../hostnet/index.js";
import type { NetworkProvisioner, NetworkSpec, ProvisionedNetwork } from "../network-provisioner.js";

/**
 * KVM hosts carry shared networks on Linux bridges (src/hostnet/): untagged networks bridge the
 * uplink itself, tagged ones a VLAN sub-interface of it; that port is where the router's
 * traffic enters, so it is the bridge's only trusted port.
 */
export class HostBridgeProvisioner implements NetworkProvisioner {
  constructor(private readonly options: { uplink?: InterfaceName; mtu?: number; netns?: string }) {}

  async ensure(spec: NetworkSpec): Promise<ProvisionedNetwork> {
    const state = await ensureBridge(
      {
        bridge: bridgeNameFor({ id: spec.networkId, vlan: spec.vlan }),
        uplink: this.options.uplink,
        vlan: spec.vlan,
        mtu: spec.mtu ?? this.options.mtu,
      },
      this.hostnetOptions(),
    );
    return { bridge: state.bridge, trustedPorts: state.uplinkPort === undefined ? [] : [state.uplinkPort] };
  }

  async remove(spec: NetworkSpec & { bridge: InterfaceName }): Promise<void> {
    await removeBridge(
      {
        bridge: spec.bridge,
        uplink: this.options.uplink,
        vlan: spec.vlan,
      },
      this.hostnetOptions(),
    );
  }

  async preparePorts(devices: readonly string[]): Promise<void> {
    await disableHostIpv6(devices, this.hostnetOptions());
  }

  private hostnetOptions() {
    return { netns: this.options.netns };
  }
}

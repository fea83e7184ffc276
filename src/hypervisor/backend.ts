import type { InterfaceName, Mac } from "../addressing/index.js";
import type { Hypervisor } from "./hypervisor.js";
import type { NetworkProvisioner } from "./network-provisioner.js";

/** Protocol methods a backend may be unable to carry out; hello advertises only what it can do. */
export type BackendCapability = "network.ensure" | "nic.plug" | "vm.deploy" | "state.sync" | "host.diagnose";

/**
 * Everything the agent core needs from one hypervisor backend, in one bundle (`kvm/backend.ts`,
 * `xenserver/backend.ts`): the core imports neither backend and never asks which one it has.
 */
export interface HypervisorBackend {
  hypervisor: Hypervisor;
  /** The host's shared-network bridges, as this hypervisor makes them. */
  networks: NetworkProvisioner;
  /**
   * Device-name patterns that can only be guest ports on this host (`v6*` on KVM, `vif*`/`tap*`
   * in dom0): a managed bridge drops every matching port that has no rules yet (fail closed).
   */
  guestPortPatterns: readonly string[];
  /**
   * The host device a new NIC will have, chosen by the agent so its rules exist before the
   * device does (KVM's tap name); undefined where the hypervisor names devices itself
   * (XenServer's `vif<domid>.<n>`, known only once plugged).
   */
  deviceFor(mac: Mac): InterfaceName | undefined;
  /** What this backend can do, for `agent.hello`. */
  capabilities: readonly BackendCapability[];
}

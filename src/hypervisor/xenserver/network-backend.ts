import { V6Error } from "../../errors.js";
import type { HostRecord } from "./records.js";

export type XenNetworkBackend = "bridge" | "openvswitch";

/** The host's network backend from `host.software_version.network_backend` (XenServer/XCP-ng default: openvswitch). */
export function networkBackendOf(host: HostRecord): XenNetworkBackend {
  const value = host.software_version.network_backend;
  if (value === "bridge" || value === "openvswitch") return value;
  // Hosts that do not say are Open vSwitch hosts: it has been the default since XenServer 6.0.
  return "openvswitch";
}

/**
 * ebtables and ip6tables only ever see frames that cross a Linux bridge. On Open vSwitch the
 * guest's frames never do, so filtering there would be a silent no-op: refuse instead.
 */
export function assertBridgeBackend(host: HostRecord): void {
  const backend = networkBackendOf(host);
  if (backend === "bridge") return;
  throw new V6Error(
    "not_implemented",
    `XenServer host ${host.hostname || host.uuid} uses the Open vSwitch network backend (host.software_version.network_backend = ${JSON.stringify(host.software_version.network_backend ?? "")}): ` +
      "v6agent guards guest ports with ebtables/ip6tables, which never see traffic switched by Open vSwitch, so it refuses to run " +
      "rather than pretend to filter. Switch the host to the Linux bridge backend (`xe-switch-network-backend bridge`, then reboot) " +
      "or see docs/xenserver.md for what Open vSwitch support needs.",
    { field: "host.software_version.network_backend" },
  );
}

import { type InterfaceName, type Mac, parseInterfaceName } from "../../addressing/index.js";

/**
 * The tap name the agent gives a guest NIC (`<target dev=…/>`) when the caller chose none:
 * `v6` and the MAC's twelve hex digits, 14 bytes. MACs are unique on a host, so the name is
 * too, and it is known before the tap exists so its firewall rules can be installed first.
 * libvirt keeps such names (it only regenerates names starting with `vnet`, `vif` or `macvtap`).
 */
export function tapNameForMac(mac: Mac): InterfaceName {
  return parseInterfaceName(`v6${mac.replaceAll(":", "")}`);
}

/** Matches every tap name `tapNameForMac` gives (and, by the `v6` prefix, nothing libvirt names). */
export const TAP_NAME_PATTERN = "v6*";

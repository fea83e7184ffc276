import { type InterfaceName, type Mac, parseInterfaceName } from "../addressing/index.js";

/**
 * The tap name the agent gives a KVM guest NIC (`<target dev=.../>`): `v6` and the MAC's twelve
 * hex digits, 14 bytes. Deterministic, so the port's rules can be installed before libvirt
 * creates the tap and found again after an agent restart; unique on a host because MACs are.
 */
export function tapNameForMac(mac: Mac): InterfaceName {
  return parseInterfaceName(`v6${mac.replaceAll(":", "")}`, "device");
}

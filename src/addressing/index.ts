export { dhcpHostLine } from "./dnsmasq.js";
export { duidLl, duidLlBytes } from "./duid.js";
export { eui64Global, eui64InterfaceId, eui64LinkLocal } from "./eui64.js";
export { type InterfaceName, MAX_INTERFACE_NAME_BYTES, parseInterfaceName } from "./interface-name.js";
export { type Mac, macBytes, parseMac } from "./mac.js";
export {
  type Ipv6Network,
  parseAddressInNetwork,
  parseIpv6Address,
  parseIpv6Network,
  SHARED_NETWORK_PREFIX_LENGTH,
} from "./network.js";
export { parseIpv4Address, parseMtu, parseNicModel, parseUuid } from "./scalars.js";
export { parseVlanId, type VlanId } from "./vlan.js";

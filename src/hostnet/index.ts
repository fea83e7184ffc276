export { type BridgeState, ensureBridge, removeBridge, type SharedBridgeSpec } from "./bridge.js";
export { bridgeNameFor, vlanInterfaceName } from "./bridge-name.js";
export { bridgePorts, findLink, type HostnetOptions, type IpLink, listLinks } from "./ip-link.js";
export { disableHostIpv6, PORT_IPV6_SYSCTLS, readIpv6Sysctl } from "./sysctl.js";

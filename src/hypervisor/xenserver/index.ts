/** The XenServer / XCP-ng backend (design section 5). */
export { parseVifDeviceName, vifDeviceName } from "./device-name.js";
export { assertBridgeBackend, networkBackendOf, type XenNetworkBackend } from "./network-backend.js";
export { FIELDS_USED, MESSAGES_USED } from "./records.js";
export { MANAGED_KEY, PREFIXES_KEY, parseSharedNetworkRequest, type SharedNetwork, type SharedNetworkRequest } from "./shared-network.js";
export { XapiCallError, XapiConnection, type XapiConnectionOptions, type XapiCredentials } from "./xapi-connection.js";
export { WATCHED_CLASSES, XenServerHypervisor, type XenServerOptions } from "./xenserver-hypervisor.js";

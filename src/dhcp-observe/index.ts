export {
  CLIENT_MESSAGE_TYPES,
  DHCPV6_SERVER_PORT,
  type Dhcpv6ClientMessage,
  type IdentityAssociation,
  type ParseResult,
  parseDhcpv6Message,
  parseDhcpv6Packet,
} from "./dhcpv6-message.js";
export { type Duid, isDuidLlOf, MAX_DUID_BYTES, parseDuid } from "./duid.js";
export { guestConfigHint } from "./guest-hint.js";
export { IDENTITY_FILE_VERSION, parseSavedObservations, type SavedObservation, savedObservations } from "./identity-file.js";
export { DhcpIdentityStore, type DuidObservation, type SharedDuid } from "./identity-store.js";
export { type NflogPacket, openNflog } from "./nflog.js";
export { DhcpObserver, type DhcpObserverOptions, type DhcpObserverStats } from "./observer.js";
export { observedDuidOf } from "./report.js";

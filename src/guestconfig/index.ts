export { findGuestOs, GUEST_OSES, type GuestOs, guestOsIds } from "./catalog.js";
export type { GuestConfig, GuestConfigRenderer, GuestConfigRequest, GuestFile, NicRole } from "./guest-config.js";
export { formatGuestConfig } from "./text.js";

/** The address patterns of the protocol's schemas (./schemas.ts), apart so the agent can name them without TypeBox. */
export const MAC_PATTERN = "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$";
/** Any IPv6 CIDR shape; the length is checked by parseIpv6Network so /48 gets a message naming /48 and /64. */
export const IPV6_PREFIX_PATTERN = "^[0-9A-Fa-f:.]{2,45}/[0-9]{1,3}$";
export const IPV6_ADDRESS_PATTERN = "^[0-9A-Fa-f:.]{2,45}$";
export const IPV4_ADDRESS_PATTERN = "^[0-9]{1,3}(\\.[0-9]{1,3}){3}$";

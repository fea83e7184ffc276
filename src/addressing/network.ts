import { Address6 } from "ip-address";
import { InvalidArgumentError } from "../errors.js";

/** The only prefix length a shared IPv6 network may have (the seed: "CIDR size must be 64"). */
export const SHARED_NETWORK_PREFIX_LENGTH = 64;

/** A validated shared network: a /64 of global unicast or unique local space. */
export interface Ipv6Network {
  /** The network address in canonical form, e.g. `2001:db8:1:1::`. */
  readonly prefix: string;
  /** Always 64. */
  readonly length: 64;
  /** `2001:db8:1:1::/64`. */
  readonly cidr: string;
}

/**
 * Parses a shared network's prefix. Refuses any length but /64 (naming the given length),
 * host bits set, and prefixes no guest may be numbered from (link-local, multicast, ::/64).
 */
export function parseIpv6Network(input: unknown, field = "prefix"): Ipv6Network {
  if (typeof input !== "string") {
    throw new InvalidArgumentError(field, `expected an IPv6 prefix string such as 2001:db8:1:1::/64, got ${typeof input}`);
  }
  const slash = input.indexOf("/");
  if (slash < 0) {
    throw new InvalidArgumentError(
      field,
      `${JSON.stringify(input)} has no prefix length; a shared network is a /64 such as 2001:db8:1:1::/64`,
    );
  }
  const lengthText = input.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lengthText)) {
    throw new InvalidArgumentError(field, `${JSON.stringify(input)} has a malformed prefix length ${JSON.stringify(lengthText)}`);
  }
  const length = Number(lengthText);
  const address = parseAddressText(input.slice(0, slash), field);
  if (length > 128) {
    throw new InvalidArgumentError(field, `prefix length /${length} is out of range (an IPv6 prefix length is 0 to 128)`);
  }
  if (length !== SHARED_NETWORK_PREFIX_LENGTH) {
    throw new InvalidArgumentError(field, `prefix length /${length} is not allowed: a shared IPv6 network must be exactly /64`);
  }
  const bytes = toBytes(address);
  const network = bytes.slice(0, 8).concat(new Array<number>(8).fill(0));
  const prefix = Address6.fromByteArray(network).correctForm();
  if (bytes.slice(8).some((byte) => byte !== 0)) {
    throw new InvalidArgumentError(field, `${input} has host bits set; the network is ${prefix}/64`);
  }
  if (bytes[0] === 0xff) {
    throw new InvalidArgumentError(field, `${prefix}/64 is multicast space, not a network guests can be numbered from`);
  }
  if (bytes[0] === 0xfe && ((bytes[1] as number) & 0xc0) === 0x80) {
    throw new InvalidArgumentError(field, `${prefix}/64 is link-local space; a shared network needs a global or unique local /64`);
  }
  if (bytes.slice(0, 8).every((byte) => byte === 0)) {
    throw new InvalidArgumentError(field, `${prefix}/64 holds the unspecified and loopback addresses; use a global or unique local /64`);
  }
  return { prefix, length: 64, cidr: `${prefix}/64` };
}

/**
 * Parses an address that must be usable by a host inside `network` (a gateway or an assigned
 * guest address): inside the /64, not the subnet-router anycast address (RFC 4291 §2.6.1) and
 * not one of the reserved subnet anycast addresses (RFC 2526).
 */
export function parseAddressInNetwork(input: unknown, network: Ipv6Network, field = "address"): string {
  if (typeof input !== "string") {
    throw new InvalidArgumentError(field, `expected an IPv6 address string, got ${typeof input}`);
  }
  if (input.includes("/")) {
    throw new InvalidArgumentError(field, `${JSON.stringify(input)} is a prefix; expected a single IPv6 address`);
  }
  const bytes = toBytes(parseAddressText(input, field));
  const address = Address6.fromByteArray(bytes).correctForm();
  const networkBytes = toBytes(new Address6(network.prefix));
  if (bytes.slice(0, 8).some((byte, i) => byte !== networkBytes[i])) {
    throw new InvalidArgumentError(field, `${address} is outside the network ${network.cidr}`);
  }
  const interfaceId = bytes.slice(8);
  if (interfaceId.every((byte) => byte === 0)) {
    throw new InvalidArgumentError(field, `${address} is the subnet-router anycast address of ${network.cidr}; it cannot be assigned`);
  }
  const reservedAnycastHigh = [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
  if (interfaceId.slice(0, 7).every((byte, i) => byte === reservedAnycastHigh[i]) && (interfaceId[7] as number) >= 0x80) {
    throw new InvalidArgumentError(field, `${address} is a reserved subnet anycast address (RFC 2526); it cannot be assigned`);
  }
  return address;
}

/** Parses any single IPv6 address (no prefix, no zone) into canonical form. */
export function parseIpv6Address(input: unknown, field = "address"): string {
  if (typeof input !== "string") {
    throw new InvalidArgumentError(field, `expected an IPv6 address string, got ${typeof input}`);
  }
  if (input.includes("/")) {
    throw new InvalidArgumentError(field, `${JSON.stringify(input)} is a prefix; expected a single IPv6 address`);
  }
  return parseAddressText(input, field).correctForm();
}

function parseAddressText(text: string, field: string): Address6 {
  if (text.includes("%")) {
    throw new InvalidArgumentError(field, `${JSON.stringify(text)} carries a zone index; expected a plain IPv6 address`);
  }
  if (text.length === 0 || text.length > 45 || !/^[0-9a-fA-F:.]+$/.test(text)) {
    throw new InvalidArgumentError(field, `${JSON.stringify(text.slice(0, 50))} is not an IPv6 address`);
  }
  try {
    return new Address6(text);
  } catch {
    throw new InvalidArgumentError(field, `${JSON.stringify(text)} is not an IPv6 address`);
  }
}

function toBytes(address: Address6): number[] {
  const bytes = address.toByteArray();
  // ip-address drops leading zero bytes; right-align into 16.
  return new Array<number>(16 - bytes.length).fill(0).concat(bytes);
}

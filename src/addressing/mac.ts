import { InvalidArgumentError } from "../errors.js";

/** A unicast Ethernet MAC in canonical form: six lower-case hex octets joined by colons. */
export type Mac = string & { readonly __brand: "Mac" };

const MAC_PATTERN = /^([0-9a-f]{2})([:-])([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i;

/**
 * Parses `52:54:00:12:34:56`, `52-54-00-12-34-56` or upper case into the canonical form.
 * Guest NICs need a unicast address: the I/G bit (least significant bit of the first octet)
 * set means multicast or broadcast, which no VIF may carry as its source MAC.
 */
export function parseMac(input: unknown, field = "mac"): Mac {
  if (typeof input !== "string") {
    throw new InvalidArgumentError(field, `expected a MAC address string, got ${typeof input}`);
  }
  const match = MAC_PATTERN.exec(input);
  if (match === null) {
    throw new InvalidArgumentError(
      field,
      `${JSON.stringify(truncate(input))} is not a MAC address (expected six hex octets such as 52:54:00:12:34:56)`,
    );
  }
  const octets = [match[1], match[3], match[4], match[5], match[6], match[7]].map((octet) => (octet as string).toLowerCase());
  const first = Number.parseInt(octets[0] as string, 16);
  if ((first & 0x01) !== 0) {
    throw new InvalidArgumentError(
      field,
      `${octets.join(":")} is a multicast MAC (I/G bit set in the first octet); a guest NIC needs a unicast MAC`,
    );
  }
  if (octets.every((octet) => octet === "00")) {
    throw new InvalidArgumentError(field, "00:00:00:00:00:00 is not a usable guest MAC");
  }
  return octets.join(":") as Mac;
}

/** The six octets of a canonical MAC. */
export function macBytes(mac: Mac): Uint8Array {
  return Uint8Array.from(mac.split(":").map((octet) => Number.parseInt(octet, 16)));
}

function truncate(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

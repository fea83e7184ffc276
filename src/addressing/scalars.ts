import { isIPv4 } from "node:net";
import { InvalidArgumentError } from "../errors.js";

/** A VM UUID in canonical lower-case 8-4-4-4-12 form (libvirt and XAPI both use it). */
export function parseUuid(input: unknown, field = "uuid"): string {
  if (typeof input !== "string" || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(input)) {
    throw new InvalidArgumentError(field, `${JSON.stringify(typeof input === "string" ? input.slice(0, 50) : input)} is not a UUID`);
  }
  return input.toLowerCase();
}

/** A unicast dotted-quad IPv4 host address for dual-stack ports (not 0/8, 127/8 or 224/3). */
export function parseIpv4Address(input: unknown, field = "ipv4"): string {
  if (typeof input !== "string" || !isIPv4(input)) {
    throw new InvalidArgumentError(field, `${JSON.stringify(input)} is not an IPv4 address`);
  }
  const first = Number(input.split(".")[0]);
  if (first === 0 || first === 127 || first >= 224) {
    throw new InvalidArgumentError(field, `${input} is not a unicast host address`);
  }
  return input;
}

/** MTU of a bridge or link: IPv6 needs at least 1280; Linux allows at most 65535. */
export function parseMtu(input: unknown, field = "mtu"): number {
  if (typeof input !== "number" || !Number.isInteger(input) || input < 1280 || input > 65_535) {
    throw new InvalidArgumentError(field, `MTU ${JSON.stringify(input)} is out of range (IPv6 needs 1280 to 65535)`);
  }
  return input;
}

/** A NIC model name as libvirt takes it (`virtio`, `e1000`, `rtl8139`, ...). */
export function parseNicModel(input: unknown, field = "model"): string {
  if (typeof input !== "string" || !/^[a-z0-9][a-z0-9_-]{0,31}$/i.test(input)) {
    throw new InvalidArgumentError(field, `${JSON.stringify(input)} is not a NIC model name`);
  }
  return input;
}

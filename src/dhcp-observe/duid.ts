import { duidLl, type Mac } from "../addressing/index.js";

/**
 * A DHCPv6 client's DUID (RFC 8415 §11) as a guest sent it: its type, its bytes, and what the
 * type's fields say. Only DUID-LL made from the VIF's MAC matches the reservation the DHCPv6
 * server keys by (the seed's scheme); the others are what clients make by default.
 */
export interface Duid {
  /** 1 LLT, 2 EN, 3 LL, 4 UUID; anything else is kept as sent. */
  type: number;
  /** `DUID-LLT`, `DUID-EN`, `DUID-LL`, `DUID-UUID` or `DUID type <n>`. */
  typeName: string;
  /** The whole DUID as colon hex, type included (`00:03:00:01:52:54:...`), as dnsmasq writes it. */
  hex: string;
  /** LLT and LL: the link-layer address as colon hex (a MAC for hardware type 1). */
  linkLayerAddress?: string;
  /** LLT and LL: the hardware type (1 Ethernet). */
  hardwareType?: number;
  /** LLT: seconds since 2000-01-01 UTC. */
  time?: number;
  /** EN: the IANA enterprise number. */
  enterpriseNumber?: number;
}

const TYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [1, "DUID-LLT"],
  [2, "DUID-EN"],
  [3, "DUID-LL"],
  [4, "DUID-UUID"],
]);

/** RFC 8415 §11.1: at most 128 bytes after the 2-byte type. */
export const MAX_DUID_BYTES = 130;

const hex = (bytes: Uint8Array) => Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join(":");

export function parseDuid(bytes: Uint8Array): { ok: true; duid: Duid } | { ok: false; reason: string } {
  if (bytes.length < 3) return { ok: false, reason: `a DUID needs 3 bytes or more, got ${bytes.length}` };
  if (bytes.length > MAX_DUID_BYTES) return { ok: false, reason: `a DUID of ${bytes.length} bytes, more than ${MAX_DUID_BYTES}` };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = view.getUint16(0);
  const duid: Duid = { type, typeName: TYPE_NAMES.get(type) ?? `DUID type ${type}`, hex: hex(bytes) };
  // The fields a type defines, where they are whole; a short one is still the client's DUID.
  if ((type === 1 && bytes.length > 8) || (type === 3 && bytes.length > 4)) {
    duid.hardwareType = view.getUint16(2);
    if (type === 1) duid.time = view.getUint32(4);
    duid.linkLayerAddress = hex(bytes.subarray(type === 1 ? 8 : 4));
  } else if (type === 2 && bytes.length >= 6) {
    duid.enterpriseNumber = view.getUint32(2);
  }
  return { ok: true, duid };
}

/** Whether `duid` is the DUID-LL the DHCPv6 server's reservation for `mac` is keyed by. */
export function isDuidLlOf(duid: Duid, mac: Mac): boolean {
  return duid.hex === duidLl(mac);
}

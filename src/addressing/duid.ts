import { type Mac, macBytes } from "./mac.js";

/** DUID type 3 (DUID-LL) and hardware type 1 (Ethernet), RFC 8415 §11.4. */
const DUID_TYPE_LL = 3;
const HARDWARE_TYPE_ETHERNET = 1;

/** DUID-LL of a MAC as bytes: 00 03 00 01 followed by the six MAC octets. */
export function duidLlBytes(mac: Mac): Uint8Array {
  const bytes = new Uint8Array(10);
  bytes[0] = DUID_TYPE_LL >> 8;
  bytes[1] = DUID_TYPE_LL & 0xff;
  bytes[2] = HARDWARE_TYPE_ETHERNET >> 8;
  bytes[3] = HARDWARE_TYPE_ETHERNET & 0xff;
  bytes.set(macBytes(mac), 4);
  return bytes;
}

/** DUID-LL of a MAC as colon hex, the form dnsmasq's `dhcp-host=id:` takes. */
export function duidLl(mac: Mac): string {
  return Array.from(duidLlBytes(mac), (byte) => byte.toString(16).padStart(2, "0")).join(":");
}

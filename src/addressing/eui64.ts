import { Address6 } from "ip-address";
import { type Mac, macBytes } from "./mac.js";
import type { Ipv6Network } from "./network.js";

/**
 * Modified EUI-64 interface identifier of a MAC (RFC 4291 Appendix A): ff:fe inserted in the
 * middle and the universal/local bit (0x02 of the first octet) inverted.
 */
export function eui64InterfaceId(mac: Mac): Uint8Array {
  const m = macBytes(mac);
  return Uint8Array.from([
    (m[0] as number) ^ 0x02,
    m[1] as number,
    m[2] as number,
    0xff,
    0xfe,
    m[3] as number,
    m[4] as number,
    m[5] as number,
  ]);
}

/** The link-local address a guest derives from its MAC: fe80::/64 + modified EUI-64. */
export function eui64LinkLocal(mac: Mac): string {
  return joinAddress([0xfe, 0x80, 0, 0, 0, 0, 0, 0], eui64InterfaceId(mac));
}

/** The EUI-64 address of a MAC inside a shared /64 network. */
export function eui64Global(mac: Mac, network: Ipv6Network): string {
  const prefix = new Address6(network.prefix).toByteArray();
  const first8 = new Array<number>(8).fill(0);
  // toByteArray drops leading zero bytes; right-align it into 16 bytes.
  const full = new Array<number>(16 - prefix.length).fill(0).concat(prefix);
  for (let i = 0; i < 8; i++) first8[i] = full[i] as number;
  return joinAddress(first8, eui64InterfaceId(mac));
}

function joinAddress(high: ArrayLike<number>, low: ArrayLike<number>): string {
  const bytes = [...Array.from(high), ...Array.from(low)];
  return Address6.fromByteArray(bytes).correctForm();
}

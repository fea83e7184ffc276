/** Builders of DHCPv6 client messages in IPv6/UDP packets, for the parser's tests. */

export interface OptionSpec {
  code: number;
  data: Uint8Array;
}

export function bytes(hex: string): Uint8Array {
  const clean = hex.replaceAll(/[^0-9a-f]/gi, "");
  return Uint8Array.from(clean.match(/../g) ?? [], (pair) => Number.parseInt(pair, 16));
}

export function option(code: number, data: Uint8Array): OptionSpec {
  return { code, data };
}

export function encodeOptions(options: readonly OptionSpec[]): Uint8Array {
  const parts = options.flatMap(({ code, data }) => [Uint8Array.of(code >> 8, code & 0xff, data.length >> 8, data.length & 0xff), data]);
  return concat(parts);
}

export function dhcpv6Message(type: number, transactionId: number, options: readonly OptionSpec[]): Uint8Array {
  return concat([
    Uint8Array.of(type, (transactionId >> 16) & 0xff, (transactionId >> 8) & 0xff, transactionId & 0xff),
    encodeOptions(options),
  ]);
}

/** An IA_NA with `iaid` (T1, T2 zero, no sub-options). */
export function iaNa(iaid: number): OptionSpec {
  const data = new Uint8Array(12);
  new DataView(data.buffer).setUint32(0, iaid);
  return option(3, data);
}

/** The message in UDP (546 -> 547) in IPv6 from fe80::1 to ff02::1:2, behind `extensionHeaders` (raw, chained by the caller's next-header bytes). */
export function ipv6Udp(
  message: Uint8Array,
  options: { destinationPort?: number; nextHeader?: number; extensionHeaders?: Uint8Array } = {},
): Uint8Array {
  const extension = options.extensionHeaders ?? new Uint8Array(0);
  const udpLength = 8 + message.length;
  const udp = Uint8Array.of(
    0x02,
    0x22,
    (options.destinationPort ?? 547) >> 8,
    (options.destinationPort ?? 547) & 0xff,
    udpLength >> 8,
    udpLength & 0xff,
    0,
    0,
  );
  const payloadLength = extension.length + udpLength;
  const header = new Uint8Array(40);
  header[0] = 0x60;
  header[4] = payloadLength >> 8;
  header[5] = payloadLength & 0xff;
  header[6] = options.nextHeader ?? 17;
  header[7] = 1;
  header.set(bytes("fe800000000000000000000000000001"), 8);
  header.set(bytes("ff020000000000000000000000010002"), 24);
  return concat([header, extension, udp, message]);
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

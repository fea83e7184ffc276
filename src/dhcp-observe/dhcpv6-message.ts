import { type Duid, parseDuid } from "./duid.js";

/**
 * Reads a guest's DHCPv6 client message (RFC 8415) out of an IPv6 packet a log rule copied: the
 * message type, transaction id, client identifier (the DUID) and the IAIDs of its IA options.
 * The bytes come from a guest and may be anything: every length is checked against what is
 * there, nothing throws, and a message the server would refuse is refused here too.
 */

export const DHCPV6_SERVER_PORT = 547;

/** The message types a client sends to a server (RFC 8415 §7.3), by name. */
export const CLIENT_MESSAGE_TYPES: ReadonlyMap<number, string> = new Map([
  [1, "Solicit"],
  [3, "Request"],
  [4, "Confirm"],
  [5, "Renew"],
  [6, "Rebind"],
  [8, "Release"],
  [9, "Decline"],
  [11, "Information-request"],
]);

const OPTION_CLIENTID = 1;
const IA_OPTIONS: ReadonlyMap<number, { kind: IaKind; minLength: number }> = new Map([
  [3, { kind: "IA_NA", minLength: 12 }],
  [4, { kind: "IA_TA", minLength: 4 }],
  [25, { kind: "IA_PD", minLength: 12 }],
]);
/** IAs kept per message: a client asks for one or two; the rest would only cost memory. */
const MAX_IAS = 8;

export type IaKind = "IA_NA" | "IA_TA" | "IA_PD";

export interface IdentityAssociation {
  kind: IaKind;
  iaid: number;
}

export interface Dhcpv6ClientMessage {
  messageType: number;
  /** `Solicit`, `Request`, ... */
  messageName: string;
  transactionId: number;
  /** Absent only in an Information-request, where RFC 8415 lets the client leave it out. */
  clientId?: Duid;
  ias: IdentityAssociation[];
}

export type ParseResult = { ok: true; message: Dhcpv6ClientMessage } | { ok: false; reason: string };

const refuse = (reason: string): ParseResult => ({ ok: false, reason });

const IPV6_HEADER = 40;
const UDP_HEADER = 8;
/** Extension headers walked before giving up (a real client sends none). */
const MAX_EXTENSION_HEADERS = 8;

/**
 * Parses an IPv6 packet (from its fixed header on, possibly cut short by the log rule's copy
 * range) carrying a UDP datagram to the DHCPv6 server port.
 */
export function parseDhcpv6Packet(packet: Uint8Array): ParseResult {
  if (packet.length < IPV6_HEADER) return refuse(`an IPv6 header needs 40 bytes, got ${packet.length}`);
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const version = view.getUint8(0) >> 4;
  if (version !== 6) return refuse(`IP version ${version}, not 6`);
  // What the packet says it holds, within what was copied.
  const end = Math.min(packet.length, IPV6_HEADER + view.getUint16(4));
  let next = view.getUint8(6);
  let offset = IPV6_HEADER;
  for (let count = 0; next !== 17; count++) {
    if (count === MAX_EXTENSION_HEADERS) return refuse(`more than ${MAX_EXTENSION_HEADERS} extension headers`);
    if (next === 44) return refuse("a fragment: the message is not whole");
    if (next !== 0 && next !== 43 && next !== 60 && next !== 51) return refuse(`next header ${next}, not UDP`);
    if (offset + 2 > end) return refuse("truncated in an extension header");
    // AH counts 4-byte words less 2; the others 8-byte units less 1.
    const length = next === 51 ? (view.getUint8(offset + 1) + 2) * 4 : (view.getUint8(offset + 1) + 1) * 8;
    next = view.getUint8(offset);
    offset += length;
  }
  if (offset + UDP_HEADER > end) return refuse("truncated in the UDP header");
  const destinationPort = view.getUint16(offset + 2);
  if (destinationPort !== DHCPV6_SERVER_PORT) return refuse(`UDP port ${destinationPort}, not ${DHCPV6_SERVER_PORT}`);
  const udpLength = view.getUint16(offset + 4);
  if (udpLength < UDP_HEADER) return refuse(`a UDP length of ${udpLength}`);
  return parseDhcpv6Message(packet.subarray(offset + UDP_HEADER, Math.min(end, offset + udpLength)));
}

/** Parses a DHCPv6 message (the UDP payload): only client messages are accepted. */
export function parseDhcpv6Message(message: Uint8Array): ParseResult {
  if (message.length < 4) return refuse(`a DHCPv6 message needs 4 bytes, got ${message.length}`);
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  const messageType = view.getUint8(0);
  const messageName = CLIENT_MESSAGE_TYPES.get(messageType);
  if (messageName === undefined) return refuse(`message type ${messageType} is not one a client sends`);
  const transactionId = view.getUint32(0) & 0xffffff;
  let clientId: Duid | undefined;
  const ias: IdentityAssociation[] = [];
  let offset = 4;
  while (offset < message.length) {
    if (offset + 4 > message.length) return refuse(`truncated in an option header at byte ${offset}`);
    const code = view.getUint16(offset);
    const length = view.getUint16(offset + 2);
    const data = offset + 4;
    if (data + length > message.length) return refuse(`option ${code} claims ${length} bytes, ${message.length - data} are left`);
    if (code === OPTION_CLIENTID) {
      if (clientId !== undefined) return refuse("two client identifiers");
      const duid = parseDuid(message.subarray(data, data + length));
      if (!duid.ok) return refuse(`client identifier: ${duid.reason}`);
      clientId = duid.duid;
    }
    const ia = IA_OPTIONS.get(code);
    if (ia !== undefined) {
      if (length < ia.minLength) return refuse(`${ia.kind} needs ${ia.minLength} bytes, has ${length}`);
      if (ias.length < MAX_IAS) ias.push({ kind: ia.kind, iaid: view.getUint32(data) });
    }
    offset = data + length;
  }
  if (clientId === undefined && messageType !== 11) return refuse(`a ${messageName} without a client identifier`);
  return { ok: true, message: { messageType, messageName, transactionId, ...(clientId === undefined ? {} : { clientId }), ias } };
}

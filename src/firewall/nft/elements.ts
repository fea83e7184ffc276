import type { GuestPort, ManagedBridge } from "../model.js";
import { expand } from "../validate.js";
import { PORT_SETS, quote, ROUTER_SETS, T } from "./names.js";

/**
 * Per-port and per-uplink data as set elements (see skeleton.ts for the sets). An element is
 * `{ set, key }` with the key in one canonical text form (`canonicalKey`), the form the
 * listing parser produces too, so reconcile compares them as strings.
 */
export interface SetElement {
  set: string;
  key: string;
}

/** The comment of a port's `guest_ports` element: what readLive needs that no lookup set holds. */
export function portComment(port: Pick<GuestPort, "bridge" | "mac">): string {
  return `bridge=${port.bridge} mac=${port.mac}`;
}

/** The comment of an uplink's `router_guarded` element. */
export function uplinkComment(bridge: string): string {
  return `bridge=${bridge}`;
}

/** Every element a port owns, `guest_ports` first, with keys already in canonical form. */
export function portElements(port: GuestPort): SetElement[] {
  const device = quote(port.device);
  const elements: SetElement[] = [
    { set: PORT_SETS.guests, key: device },
    { set: PORT_SETS.mac, key: `${device} . ${port.mac}` },
    { set: PORT_SETS.lladdr, key: `${device} . ${macInteger(port.mac)}` },
  ];
  for (const address of port.linkLocals) elements.push({ set: PORT_SETS.ip6, key: `${device} . ${address}` });
  for (const address of port.ipv6) elements.push({ set: PORT_SETS.ip6, key: `${device} . ${address}` });
  for (const address of port.linkLocals) elements.push({ set: PORT_SETS.target, key: `${device} . ${ipv6Integer(address)}` });
  for (const address of port.ipv6) elements.push({ set: PORT_SETS.target, key: `${device} . ${ipv6Integer(address)}` });
  for (const address of port.ipv4) elements.push({ set: PORT_SETS.ip4, key: `${device} . ${address}` });
  return elements;
}

/** The router-guard elements of one bridge: for each trusted port, when the bridge names its router. */
export function uplinkElements(bridge: ManagedBridge): SetElement[] {
  const router = bridge.router;
  if (router === undefined) return [];
  const elements: SetElement[] = [];
  for (const port of bridge.trustedPorts) {
    const device = quote(port);
    elements.push(
      { set: ROUTER_SETS.guarded, key: device },
      { set: ROUTER_SETS.mac, key: `${device} . ${router.mac}` },
      { set: ROUTER_SETS.linkLocal, key: `${device} . ${router.linkLocal}` },
    );
    if (router.requireManagedFlag) elements.push({ set: ROUTER_SETS.managed, key: device });
    if (router.prefix !== undefined) {
      elements.push(
        { set: ROUTER_SETS.prefixed, key: device },
        {
          set: ROUTER_SETS.prefix,
          key: `${device} . 0x${expand(router.prefix.split("/")[0] as string)
            .slice(0, 4)
            .join("")}`,
        },
      );
    }
  }
  return elements.map(({ set, key }) => ({ set, key: canonicalKey(key) }));
}

/**
 * One form for a key: interface names quoted, integers as 0x without leading zeros (how nft
 * lists them), everything else as given (addresses are canonical after validation, and nft
 * lists them in the same RFC 5952 form).
 */
export function canonicalKey(key: string): string {
  return key.includes("0x") ? key.replace(/\b0x0*([0-9a-fA-F]+)\b/g, (_, digits: string) => `0x${digits.toLowerCase()}`) : key;
}

/** The device of a key (its first, quoted part). */
export function keyDevice(key: string): string {
  return /^"([^"]*)"/.exec(key)?.[1] ?? "";
}

/**
 * Element commands that take the table from `before` to `after`: additions of all of `after`
 * (an `add` of an existing element changes nothing), and, for each element only in `before`,
 * an add then a delete, so the delete cannot fail on an element someone already removed (nft
 * 1.0.6 has no `destroy`). A `guest_ports`/`router_guarded` element whose comment changed is
 * deleted and added again. Removals come first in the text, but the whole is one transaction.
 */
export function elementChanges(
  before: readonly SetElement[],
  after: readonly SetElement[],
  comments: { before: Map<string, string>; after: Map<string, string> } = { before: new Map(), after: new Map() },
): string[] {
  const wanted = new Set(after.map((e) => `${e.set} ${e.key}`));
  const lines: string[] = [];
  for (const element of before) {
    const id = `${element.set} ${element.key}`;
    const comment = comments.after.get(id);
    const recomment = comment !== undefined && comments.before.get(id) !== comment;
    if (!wanted.has(id) || recomment) lines.push(...removeElement(element));
  }
  for (const element of after) lines.push(addElements(element.set, [element], comments.after));
  return lines;
}

export function removeElement(element: SetElement): string[] {
  return [`add element ${T} ${element.set} { ${element.key} }`, `delete element ${T} ${element.set} { ${element.key} }`];
}

/** One `add element` command for elements of one set (with their comments, if any). */
export function addElements(set: string, elements: readonly SetElement[], comments: Map<string, string>): string {
  // Only membership elements carry comments: the other sets' elements need no lookup.
  const commented = set === PORT_SETS.guests || set === ROUTER_SETS.guarded;
  let items = "";
  for (const e of elements) {
    const comment = commented ? comments.get(`${set} ${e.key}`) : undefined;
    items += `${items === "" ? "" : ", "}${comment === undefined ? e.key : `${e.key} comment "${comment}"`}`;
  }
  return `add element ${T} ${set} { ${items} }`;
}

/** Groups elements by set, keeping the order sets first appear in. */
export function bySet(elements: readonly SetElement[]): Map<string, SetElement[]> {
  const groups = new Map<string, SetElement[]>();
  for (const element of elements) {
    const group = groups.get(element.set) ?? [];
    group.push(element);
    groups.set(element.set, group);
  }
  return groups;
}

/** The comments of ports' and uplinks' membership elements, by `set key`. */
export function membershipComments(ports: readonly GuestPort[], bridges: readonly ManagedBridge[]): Map<string, string> {
  const comments = new Map<string, string>();
  for (const port of ports) comments.set(`${PORT_SETS.guests} ${quote(port.device)}`, portComment(port));
  for (const bridge of bridges) {
    if (bridge.router === undefined) continue;
    for (const uplink of bridge.trustedPorts) comments.set(`${ROUTER_SETS.guarded} ${quote(uplink)}`, uplinkComment(bridge.name));
  }
  return comments;
}

/** An IPv6 address as the 128-bit integer literal a raw payload comparison needs (no leading zeros, as nft lists it). */
export function ipv6Integer(address: string): string {
  return integer(ipv6Hex(address));
}

/** The 32 hex digits of a canonical IPv6 address (what validate.ts `expand` gives, joined; faster). */
function ipv6Hex(address: string): string {
  const double = address.indexOf("::");
  const head = double < 0 ? address : address.slice(0, double);
  const tail = double < 0 ? "" : address.slice(double + 2);
  const h = head === "" ? [] : head.split(":");
  const t = tail === "" ? [] : tail.split(":");
  let digits = "";
  for (const group of h) digits += group.padStart(4, "0");
  digits += "0000".repeat(8 - h.length - t.length);
  for (const group of t) digits += group.padStart(4, "0");
  return digits;
}

function macInteger(mac: string): string {
  return integer(mac.replaceAll(":", ""));
}

function integer(hexDigits: string): string {
  let start = 0;
  while (start < hexDigits.length - 1 && hexDigits[start] === "0") start++;
  return `0x${hexDigits.slice(start)}`;
}

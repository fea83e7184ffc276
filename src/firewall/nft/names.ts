import { type DropReason, dropReasons } from "../model.js";

/**
 * Names of everything in `table bridge v6agent`, and the rule fingerprint reconcile compares.
 * One module so the renderers, the listing parser and the reconcile plan agree on them.
 */

export const TABLE = "v6agent";
export const T = `bridge ${TABLE}`;

/** Per-port data, keyed by the port's device (see skeleton.ts for what each set is for). */
export const PORT_SETS = {
  guests: "guest_ports",
  mac: "port_mac",
  lladdr: "port_lladdr",
  ip6: "port_ip6",
  target: "port_target",
  ip4: "port_ip4",
} as const;

/** Router-guard data, keyed by a trusted (uplink) port of a bridge whose router is named. */
export const ROUTER_SETS = {
  guarded: "router_guarded",
  mac: "router_mac",
  linkLocal: "router_ll",
  managed: "router_managed",
  prefixed: "router_prefixed",
  prefix: "router_prefix",
} as const;

/** The chain every drop of one reason goes to, and the set that counts it per incoming port. */
export function dropObjects(reason: DropReason): { chain: string; set: string } {
  return { chain: `drop_${reason}`, set: `drops_${reason}` };
}

export const dropSets: readonly string[] = dropReasons.map((reason) => dropObjects(reason).set);

export function bridgeObjects(name: string): { chain: string; trustedSet: string; guestSet: string; counter: string } {
  return { chain: `bridge_${name}`, trustedSet: `trusted_${name}`, guestSet: `guests_${name}`, counter: `unknown_${name}` };
}

/** What the kernel offers; decided once by probing (see probe.ts). */
export interface NftCapabilities {
  /** `meta ibrname` (CONFIG_NFT_BRIDGE_META): lets us drop every unknown port of a bridge. */
  bridgeMeta: boolean;
}

/**
 * A rule's fingerprint: 48 bits of a fast non-cryptographic hash of its text (two 32-bit
 * multiply-xorshift lanes). It only has to tell our own renderings apart from one another and
 * from a rule edited by hand.
 */
export function ruleComment(text: string): string {
  let a = 0x9e3779b9;
  let b = 0x85ebca6b;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  }
  a = Math.imul(a ^ (a >>> 15), 0x2c1b3c6d) ^ Math.imul(b ^ (b >>> 13), 0x297a2d39);
  b = Math.imul(b ^ (b >>> 16), 0x85ebca6b) ^ Math.imul(a ^ (a >>> 13), 0xc2b2ae35);
  return `v6a:${((b >>> 0) & 0xffff).toString(16).padStart(4, "0")}${(a >>> 0).toString(16).padStart(8, "0")}`;
}

export function withComment(text: string): string {
  return `${text} comment "${ruleComment(text)}"`;
}

export function quote(name: string): string {
  return `"${name}"`;
}

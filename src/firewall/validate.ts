import { parseInterfaceName, parseIpv4Address, parseIpv6Address, parseIpv6Network, parseMac } from "../addressing/index.js";
import { InvalidArgumentError } from "../errors.js";
import type { FirewallState, GuestPort, ManagedBridge, RouterPolicy } from "./model.js";

/**
 * Checks a port, a bridge or a whole state before any backend renders it, so a bad value is
 * refused with the offending field named and nothing is half-applied. Returns canonical copies
 * (lower-case MAC, compressed addresses, duplicates removed) so that reconcile compares like
 * with like.
 */
export function validatePort(input: GuestPort, field = "port"): GuestPort {
  if (typeof input !== "object" || input === null) throw new InvalidArgumentError(field, "expected a guest port object");
  const device = parseInterfaceName(input.device, `${field}.device`);
  const bridge = parseInterfaceName(input.bridge, `${field}.bridge`);
  const mac = parseMac(input.mac, `${field}.mac`);
  const linkLocals = unique(
    list(input.linkLocals, `${field}.linkLocals`).map((value, i) => {
      const address = parseIpv6Address(value, `${field}.linkLocals[${i}]`);
      if (!address.toLowerCase().startsWith("fe80:")) {
        throw new InvalidArgumentError(`${field}.linkLocals[${i}]`, `${address} is not a link-local address (fe80::/64)`);
      }
      return address;
    }),
  );
  const network = input.network === undefined ? undefined : parseIpv6Network(input.network, `${field}.network`);
  let firstPrefix: string | undefined;
  const ipv6 = unique(
    list(input.ipv6, `${field}.ipv6`).map((value, i) => {
      const name = `${field}.ipv6[${i}]`;
      const address = parseIpv6Address(value, name);
      const prefix = prefix64(address);
      if (network !== undefined) {
        if (prefix !== prefix64(network.prefix)) throw new InvalidArgumentError(name, `${address} is outside the network ${network.cidr}`);
      } else if (firstPrefix !== undefined && prefix !== firstPrefix) {
        throw new InvalidArgumentError(name, `${address} is not in the same /64 as the port's other addresses`);
      }
      firstPrefix ??= prefix;
      if (address.startsWith("fe80:") || address.startsWith("ff") || address === "::" || address === "::1") {
        throw new InvalidArgumentError(name, `${address} is not an assignable global or unique local address`);
      }
      return address;
    }),
  );
  const ipv4 = unique(list(input.ipv4 ?? [], `${field}.ipv4`).map((value, i) => parseIpv4Address(value, `${field}.ipv4[${i}]`)));
  const port: GuestPort = { device, bridge, mac, linkLocals, ipv6, ipv4 };
  if (network !== undefined) port.network = network.cidr;
  return port;
}

export function validateBridge(input: ManagedBridge, field = "bridge"): ManagedBridge {
  if (typeof input !== "object" || input === null) throw new InvalidArgumentError(field, "expected a managed bridge object");
  const name = parseInterfaceName(input.name, `${field}.name`);
  const trustedPorts = unique(
    list(input.trustedPorts, `${field}.trustedPorts`).map((v, i) => parseInterfaceName(v, `${field}.trustedPorts[${i}]`)),
  );
  const bridge: ManagedBridge = { name, trustedPorts };
  if (input.guestPortPatterns !== undefined) {
    bridge.guestPortPatterns = unique(
      list(input.guestPortPatterns, `${field}.guestPortPatterns`).map((pattern, i) => {
        // A pattern is an interface-name prefix with one trailing `*`: safe in every rule language.
        if (typeof pattern !== "string" || !/^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,13}\*$/.test(pattern)) {
          throw new InvalidArgumentError(
            `${field}.guestPortPatterns[${i}]`,
            `${JSON.stringify(pattern)} is not a device prefix such as "vnet*"`,
          );
        }
        return pattern;
      }),
    );
  }
  if (input.router !== undefined) bridge.router = validateRouter(input.router, `${field}.router`);
  return bridge;
}

function validateRouter(input: RouterPolicy, field: string): RouterPolicy {
  if (typeof input !== "object" || input === null) throw new InvalidArgumentError(field, "expected a router object");
  const mac = parseMac(input.mac, `${field}.mac`);
  const linkLocal = parseIpv6Address(input.linkLocal, `${field}.linkLocal`);
  if (!linkLocal.startsWith("fe80:"))
    throw new InvalidArgumentError(`${field}.linkLocal`, `${linkLocal} is not a link-local address (fe80::/64)`);
  if (typeof input.requireManagedFlag !== "boolean")
    throw new InvalidArgumentError(`${field}.requireManagedFlag`, "expected true or false");
  const router: RouterPolicy = { mac, linkLocal, requireManagedFlag: input.requireManagedFlag };
  if (input.prefix !== undefined) router.prefix = parseIpv6Network(input.prefix, `${field}.prefix`).cidr;
  return router;
}

/** Validates a whole state: every part, plus the cross-references between them. */
export function validateState(input: FirewallState): FirewallState {
  const bridges = list(input.bridges, "bridges").map((b, i) => validateBridge(b, `bridges[${i}]`));
  const ports = list(input.ports, "ports").map((p, i) => validatePort(p, `ports[${i}]`));
  const bridgeNames = new Set(bridges.map((b) => b.name as string));
  const trusted = new Set(bridges.flatMap((b) => b.trustedPorts as string[]));
  const seen = new Set<string>();
  ports.forEach((port, i) => {
    if (!bridgeNames.has(port.bridge)) throw new InvalidArgumentError(`ports[${i}].bridge`, `${port.bridge} is not a managed bridge`);
    if (seen.has(port.device)) throw new InvalidArgumentError(`ports[${i}].device`, `${port.device} appears twice`);
    if (trusted.has(port.device)) throw new InvalidArgumentError(`ports[${i}].device`, `${port.device} is a trusted (router) port`);
    seen.add(port.device);
  });
  return { bridges, ports };
}

function list<T>(value: T[] | undefined, field: string): T[] {
  if (!Array.isArray(value)) throw new InvalidArgumentError(field, "expected a list");
  return value;
}

function unique<T>(values: T[]): T[] {
  return [...new Set(values)];
}

/** The first four groups of a canonical address, e.g. `2001:db8:1:1`. */
function prefix64(address: string): string {
  const full = expand(address);
  return full.slice(0, 4).join(":");
}

/** Eight 4-digit groups of an IPv6 address in canonical (compressed) form. */
export function expand(address: string): string[] {
  const [head = "", tail] = address.split("::");
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const middle = tail === undefined ? [] : new Array<string>(8 - h.length - t.length).fill("0");
  return [...h, ...middle, ...t].map((g) => g.padStart(4, "0"));
}

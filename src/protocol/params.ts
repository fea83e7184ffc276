import { createRequire } from "node:module";
import type { ValueError } from "@sinclair/typebox/errors";
import { parseAddressInNetwork, parseIpv4Address, parseIpv6Address, parseIpv6Network, parseMac } from "../addressing/index.js";
import { InvalidArgumentError } from "../errors.js";
import { methodSchemas, PARAMS_CHECKS, RESULT_CHECKS } from "./checks.generated.js";
import type { MethodName, MethodParams, MethodResult } from "./methods.js";
import { IPV6_ADDRESS_PATTERN, IPV6_PREFIX_PATTERN, MAC_PATTERN } from "./patterns.js";
import type * as S from "./schemas.js";

/**
 * Params parsing at the edge (design section 8): the schema checks shape and types, then the
 * addressing module checks meaning (unicast MAC, exactly /64, gateway inside the network) and
 * canonicalises the values, so handlers receive MACs in lower-case colon form and prefixes in
 * canonical CIDR form. Every failure is an InvalidArgumentError whose field is the path from the
 * message root (`params.nics[0].mac`), which the protocol layer sends as -32602.
 *
 * The checks are TypeBox's, compiled ahead of time (./checks.generated.ts): an agent never loads
 * TypeBox to accept a valid message. A value that fails its check is explained by TypeBox's
 * error iterator, loaded (synchronously, its CommonJS build) the first time one does.
 */

type ErrorsModule = typeof import("@sinclair/typebox/errors");
let errorsModule: ErrorsModule | undefined;

/** Throws an InvalidArgumentError naming the first field of `value` that `schema` refuses. */
function refuse(schema: object, value: unknown, root: string): never {
  errorsModule ??= createRequire(import.meta.url)("@sinclair/typebox/errors") as ErrorsModule;
  const first = errorsModule.Errors(schema as Parameters<ErrorsModule["Errors"]>[0], value).First();
  if (first === undefined) throw new InvalidArgumentError(root, "does not match the schema");
  throw schemaError(first, root);
}

/** Converts a TypeBox JSON pointer (`/nics/0/mac`) into the documented field path (`params.nics[0].mac`). */
export function fieldPath(root: string, pointer: string): string {
  let path = root;
  for (const raw of pointer.split("/").slice(1)) {
    const part = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    path += /^\d+$/.test(part) ? `[${part}]` : /^[A-Za-z_$][\w$]*$/.test(part) ? `.${part}` : `[${JSON.stringify(part)}]`;
  }
  return path;
}

function schemaError(error: ValueError, root: string): InvalidArgumentError {
  const field = fieldPath(root, error.path);
  if (error.message === "Unexpected property") return new InvalidArgumentError(field, "unknown field (not part of protocol v6agent/1)");
  if (error.message === "Expected required property") return new InvalidArgumentError(field, "required field is missing");
  // Let the addressing module explain a bad MAC or prefix in its own words.
  if (error.schema.pattern === MAC_PATTERN) parseMac(error.value, field);
  if (error.schema.pattern === IPV6_PREFIX_PATTERN) parseIpv6Network(error.value, field);
  if (error.schema.pattern === IPV6_ADDRESS_PATTERN) parseIpv6Address(error.value, field);
  const description = typeof error.schema.description === "string" ? error.schema.description : undefined;
  if (description !== undefined && error.schema.type === "string") {
    return new InvalidArgumentError(field, `${truncate(JSON.stringify(error.value) ?? "undefined")} is not ${description}`);
  }
  return new InvalidArgumentError(field, `${lowerFirst(error.message)}, got ${truncate(JSON.stringify(error.value) ?? "undefined")}`);
}

/**
 * Validates and canonicalises a method's params (`root` is the path prefix used in messages).
 * Returns a fresh value; the input is not modified.
 */
export function parseParams<M extends MethodName>(method: M, params: unknown, root = "params"): MethodParams<M> {
  if (!PARAMS_CHECKS[method](params)) refuse(methodSchemas()[method].params, params, root);
  const value = canonicalise(structuredClone(params), root) as MethodParams<M>;
  crossChecks[method]?.(value as never, root);
  return value;
}

/** Validates a method's result (the management server checks what agents answer). */
export function parseResult<M extends MethodName>(method: M, result: unknown, root = "result"): MethodResult<M> {
  if (!RESULT_CHECKS[method](result)) refuse(methodSchemas()[method].result, result, root);
  return canonicalise(structuredClone(result), root) as MethodResult<M>;
}

/** Walks a validated value and canonicalises every address-typed field through src/addressing/. */
function canonicalise(value: unknown, path: string): unknown {
  if (Array.isArray(value)) return value.map((item, index) => canonicalise(item, `${path}[${index}]`));
  if (value === null || typeof value !== "object") return value;
  const record = value as Record<string, unknown>;
  for (const [key, item] of Object.entries(record)) {
    const field = `${path}.${key}`;
    if (key === "mac" && typeof item === "string") record[key] = parseMac(item, field);
    else if (key === "prefix" && typeof item === "string") record[key] = parseIpv6Network(item, field).cidr;
    else if ((key === "linkLocal" || key === "gateway") && typeof item === "string") record[key] = parseIpv6Address(item, field);
    else if (key === "ipv6" && Array.isArray(item))
      record[key] = item.map((address, index) => parseIpv6Address(address, `${field}[${index}]`));
    else if (key === "ipv4" && Array.isArray(item))
      record[key] = item.map((address, index) => parseIpv4Address(address, `${field}[${index}]`));
    else record[key] = canonicalise(item, field);
  }
  return record;
}

type CrossCheck<M extends MethodName> = (params: MethodParams<M>, root: string) => void;

function checkNetwork(network: S.NetworkEnsureParams, path: string): void {
  if (network.gateway !== undefined) parseAddressInNetwork(network.gateway, parseIpv6Network(network.prefix), `${path}.gateway`);
  const router = network.router?.linkLocal;
  if (router !== undefined && !router.startsWith("fe80:")) {
    throw new InvalidArgumentError(`${path}.router.linkLocal`, `${router} is not a link-local address (fe80::/64)`);
  }
}

function checkUniqueMacs(nics: readonly { mac: string }[], path: string): void {
  const seen = new Map<string, number>();
  nics.forEach((nic, index) => {
    const earlier = seen.get(nic.mac);
    if (earlier !== undefined) {
      throw new InvalidArgumentError(`${path}[${index}].mac`, `${nic.mac} is already used by ${path}[${earlier}]`);
    }
    seen.set(nic.mac, index);
  });
}

const crossChecks: { [M in MethodName]?: CrossCheck<M> } = {
  "network.ensure": (params, root) => checkNetwork(params, root),
  "vm.deploy": (params, root) => checkUniqueMacs(params.nics, `${root}.nics`),
  "state.sync": (params, root) => {
    const networks = new Map<string, number>();
    params.networks.forEach((network, index) => {
      const path = `${root}.networks[${index}]`;
      if (networks.has(network.networkId))
        throw new InvalidArgumentError(`${path}.networkId`, `network ${network.networkId} is listed twice`);
      networks.set(network.networkId, index);
      checkNetwork(network, path);
    });
    const macs = new Map<string, string>();
    params.vms.forEach((vm, vmIndex) => {
      vm.nics.forEach((nic, nicIndex) => {
        const path = `${root}.vms[${vmIndex}].nics[${nicIndex}]`;
        const networkIndex = networks.get(nic.networkId);
        if (networkIndex === undefined) {
          throw new InvalidArgumentError(`${path}.networkId`, `network ${nic.networkId} is not in params.networks`);
        }
        const network = parseIpv6Network((params.networks[networkIndex] as S.NetworkEnsureParams).prefix);
        for (const [index, address] of (nic.ipv6 ?? []).entries()) parseAddressInNetwork(address, network, `${path}.ipv6[${index}]`);
        const other = macs.get(nic.mac);
        if (other !== undefined) throw new InvalidArgumentError(`${path}.mac`, `${nic.mac} is already used by ${other}`);
        macs.set(nic.mac, path);
      });
    });
  },
};

function truncate(text: string): string {
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

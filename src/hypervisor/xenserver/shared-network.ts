import { type Ipv6Network, parseInterfaceName, parseIpv6Network, parseVlanId, type VlanId } from "../../addressing/index.js";
import { V6Error } from "../../errors.js";
import type { Logger } from "../../log.js";
import { type NetworkRecord, NULL_REF, type PifRecord, type Ref } from "./records.js";
import { XapiCallError, type XapiConnection } from "./xapi-connection.js";

/** Our marks on a XAPI network (`network.other_config`): which /64s it carries, and that we made it. */
export const PREFIXES_KEY = "v6agent:prefixes";
export const MANAGED_KEY = "v6agent:managed";

export interface SharedNetworkRequest {
  /** The shared network's /64 (anything else is refused before any XAPI call). */
  prefix: string;
  /** 802.1Q tag (1–4094) for a tagged network; absent for the uplink's own untagged network. */
  vlan?: number | undefined;
  /** The uplink PIF's device (default: the management interface's). */
  uplink?: string | undefined;
}

export interface SharedNetwork {
  ref: Ref;
  uuid: string;
  /** The dom0 bridge guests' VIFs are attached to (`xapi<N>` for a VLAN network, `xenbr<N>` untagged). */
  bridge: string;
  prefix: Ipv6Network;
  vlan: VlanId | undefined;
  /** False when the network existed already (ours, or a VLAN network someone else made that we adopted). */
  created: boolean;
}

interface ValidRequest {
  prefix: Ipv6Network;
  vlan: VlanId | undefined;
  uplink: string | undefined;
}

/** Parses a request with the addressing parsers; throws InvalidArgumentError naming the field. */
export function parseSharedNetworkRequest(request: SharedNetworkRequest): ValidRequest {
  const prefix = parseIpv6Network(request.prefix, "prefix");
  const vlan = request.vlan === undefined ? undefined : parseVlanId(request.vlan, "vlan");
  const uplink = request.uplink === undefined ? undefined : parseInterfaceName(request.uplink, "uplink");
  return { prefix, vlan, uplink };
}

/**
 * Ensures the XAPI network for a shared /64 on `hostRef` and returns it (idempotent).
 * Tagged: a network made with `network.create` (our other_config marks) and a pool-wide VLAN on
 * the uplink PIF (`pool.create_VLAN_from_PIF`); an existing VLAN with that tag on the uplink is
 * adopted rather than duplicated. Untagged: the uplink's own physical network, marked.
 * If the VLAN cannot be made, the new network is destroyed again (nothing half-applied).
 */
export async function ensureSharedNetwork(
  connection: XapiConnection,
  hostRef: Ref,
  request: SharedNetworkRequest,
  logger?: Logger,
): Promise<SharedNetwork> {
  const valid = parseSharedNetworkRequest(request);
  const { prefix, vlan } = valid;
  const networks = await connection.call<Record<Ref, NetworkRecord>>("network.get_all_records");
  const pifs = await connection.call<Record<Ref, PifRecord>>("PIF.get_all_records");

  const existing = Object.entries(networks).find(([, network]) => prefixesOf(network).includes(prefix.cidr));
  if (existing !== undefined) {
    const [ref, network] = existing;
    const existingVlan = vlanOfNetwork(ref, pifs);
    if ((existingVlan ?? undefined) !== (vlan ?? undefined)) {
      throw new V6Error(
        "conflict",
        `network ${prefix.cidr} already exists on XAPI network ${network.uuid} with ${existingVlan === undefined ? "no VLAN" : `VLAN ${existingVlan}`}, not ${vlan === undefined ? "untagged" : `VLAN ${vlan}`}`,
        { field: "vlan" },
      );
    }
    return { ref, uuid: network.uuid, bridge: network.bridge, prefix, vlan, created: false };
  }

  const uplink = uplinkPif(hostRef, pifs, valid.uplink);
  if (vlan === undefined) {
    const [ref, network] = mustFind(networks, uplink.record.network);
    await addPrefix(connection, ref, network, prefix.cidr);
    return { ref, uuid: network.uuid, bridge: network.bridge, prefix, vlan, created: false };
  }

  // A VLAN with this tag already on the uplink (made by the cloud or an admin): adopt its network.
  const vlanPif = Object.values(pifs).find((pif) => pif.host === hostRef && pif.device === uplink.record.device && pif.VLAN === vlan);
  if (vlanPif !== undefined) {
    const [ref, network] = mustFind(networks, vlanPif.network);
    await addPrefix(connection, ref, network, prefix.cidr);
    logger?.info({ network: network.uuid, vlan }, "adopted an existing VLAN network for the shared /64");
    return { ref, uuid: network.uuid, bridge: network.bridge, prefix, vlan, created: false };
  }

  const ref = await connection.call<Ref>("network.create", {
    name_label: `v6agent ${prefix.cidr} VLAN ${vlan}`,
    name_description: `IPv6 shared network ${prefix.cidr} (managed by v6agent)`,
    MTU: 1500,
    other_config: { [PREFIXES_KEY]: prefix.cidr, [MANAGED_KEY]: "true" },
    tags: ["v6agent"],
  });
  try {
    await connection.call("pool.create_VLAN_from_PIF", uplink.ref, ref, vlan);
  } catch (error) {
    await undoVlanNetwork(connection, ref, logger);
    throw error;
  }
  const network = await connection.call<NetworkRecord>("network.get_record", ref);
  logger?.info({ network: network.uuid, bridge: network.bridge, vlan, prefix: prefix.cidr }, "created the XAPI network for a shared /64");
  return { ref, uuid: network.uuid, bridge: network.bridge, prefix, vlan, created: true };
}

/**
 * Removes a network whose VLAN failed: xapi keeps a VLAN whose PIF did not plug (a kernel without
 * 8021q, a networkd error), so its VLANs go first, then the network. Cleanup errors are logged;
 * the caller rethrows the original failure.
 */
async function undoVlanNetwork(connection: XapiConnection, ref: Ref, logger: Logger | undefined): Promise<void> {
  try {
    for (const pif of await connection.call<Ref[]>("network.get_PIFs", ref)) {
      const vlan = await connection.call<Ref>("PIF.get_VLAN_master_of", pif);
      if (vlan !== NULL_REF) await connection.call("VLAN.destroy", vlan);
    }
    await connection.call("network.destroy", ref);
  } catch (cleanupError) {
    logger?.error({ network: ref, error: String(cleanupError) }, "could not remove the network after its VLAN failed");
  }
}

/**
 * Adds `cidr` to the network's prefix list; already there is success. XAPI maps have no
 * compare-and-set (an entry is set by remove, then add), so another client writing the same key
 * can interleave: a MAP_DUPLICATE_KEY or a read-back without our prefix means someone else wrote
 * in between, and the merge is redone from the value now in XAPI. Our own callers are serialised
 * by the backend (`XenServerHypervisor.ensureSharedNetwork`).
 */
async function addPrefix(connection: XapiConnection, ref: Ref, network: NetworkRecord, cidr: string): Promise<void> {
  let otherConfig = network.other_config;
  for (let attempt = 1; ; attempt++) {
    const prefixes = prefixesOf({ other_config: otherConfig });
    if (prefixes.includes(cidr)) return;
    try {
      await connection.call("network.remove_from_other_config", ref, PREFIXES_KEY);
      await connection.call("network.add_to_other_config", ref, PREFIXES_KEY, [...prefixes, cidr].join(","));
    } catch (error) {
      if (!(error instanceof XapiCallError && error.xapiCode === "MAP_DUPLICATE_KEY") || attempt >= MAX_MERGE_ATTEMPTS) throw error;
    }
    otherConfig = await connection.call<Record<string, string>>("network.get_other_config", ref);
    if (prefixesOf({ other_config: otherConfig }).includes(cidr)) return;
    if (attempt >= MAX_MERGE_ATTEMPTS) {
      throw new V6Error("unavailable", `network ${ref}: another client keeps rewriting ${PREFIXES_KEY}; ${cidr} could not be added`);
    }
  }
}

/** Concurrent writers of one map entry settle within a few rounds; more means a writer that never stops. */
const MAX_MERGE_ATTEMPTS = 5;

export function prefixesOf(network: Pick<NetworkRecord, "other_config">): string[] {
  const value = network.other_config[PREFIXES_KEY];
  return value === undefined || value === "" ? [] : value.split(",");
}

function vlanOfNetwork(networkRef: Ref, pifs: Record<Ref, PifRecord>): number | undefined {
  const pif = Object.values(pifs).find((candidate) => candidate.network === networkRef && candidate.VLAN >= 0);
  return pif?.VLAN;
}

function uplinkPif(hostRef: Ref, pifs: Record<Ref, PifRecord>, device: string | undefined): { ref: Ref; record: PifRecord } {
  const candidates = Object.entries(pifs).filter(([, pif]) => pif.host === hostRef && pif.VLAN < 0);
  const found = candidates.find(([, pif]) => (device === undefined ? pif.management : pif.device === device));
  if (found === undefined) {
    throw new V6Error(
      "not_found",
      device === undefined
        ? "this host has no management PIF to use as the uplink"
        : `this host has no physical PIF ${device} to use as the uplink`,
      { field: "uplink" },
    );
  }
  return { ref: found[0], record: found[1] };
}

function mustFind(networks: Record<Ref, NetworkRecord>, ref: Ref): [Ref, NetworkRecord] {
  const network = networks[ref];
  if (network === undefined) throw new V6Error("not_found", `XAPI network ${ref} vanished`);
  return [ref, network];
}

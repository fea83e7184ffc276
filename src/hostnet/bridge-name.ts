import { createHash } from "node:crypto";
import { type InterfaceName, parseInterfaceName, type VlanId } from "../addressing/index.js";
import { InvalidArgumentError } from "../errors.js";

/**
 * Deterministic device names for a shared network, so every host (and every restart of the
 * agent) picks the same ones without storing them, all within Linux's 15 bytes:
 * - a tagged network's bridge is `v6vlan<vlan>` (≤ 10 bytes): one L2 segment per VLAN;
 * - an untagged network's bridge is `v6net` and ten hex digits of SHA-256 of its id (15 bytes).
 */
export function bridgeNameFor(network: { id: string; vlan?: VlanId | undefined }): InterfaceName {
  if (network.vlan !== undefined) return parseInterfaceName(`v6vlan${network.vlan}`, "bridge");
  if (typeof network.id !== "string" || network.id.length === 0) {
    throw new InvalidArgumentError("network.id", "expected a non-empty network id");
  }
  const digest = createHash("sha256").update(network.id).digest("hex").slice(0, 10);
  return parseInterfaceName(`v6net${digest}`, "bridge");
}

/**
 * The VLAN sub-interface on `uplink`: the conventional `<uplink>.<vlan>` when it fits in 15
 * bytes, else `v6u<vlan>.<hash of uplink>` (a long uplink name such as `enp129s0f1np1` with
 * VLAN 4094 would not fit).
 */
export function vlanInterfaceName(uplink: InterfaceName, vlan: VlanId): InterfaceName {
  const conventional = `${uplink}.${vlan}`;
  if (Buffer.byteLength(conventional) <= 15) return parseInterfaceName(conventional, "vlanInterface");
  const digest = createHash("sha256")
    .update(uplink)
    .digest("hex")
    .slice(0, 15 - `v6u${vlan}.`.length);
  return parseInterfaceName(`v6u${vlan}.${digest}`, "vlanInterface");
}

import { type InterfaceName, parseInterfaceName } from "../../addressing/index.js";

/**
 * dom0's name for a guest NIC (design section 5): netback's `vif<domid>.<device>` for the
 * paravirtual device, QEMU's `tap<domid>.<device>` for the emulated one an HVM guest uses until
 * its PV drivers load. Both change with the domid on every boot and migration.
 */
export function vifDeviceName(domid: number, device: string | number, kind: "paravirtual" | "emulated" = "paravirtual"): InterfaceName {
  if (!Number.isInteger(domid) || domid < 0) throw new RangeError(`domid ${domid} has no dom0 devices (the VM is not running)`);
  const prefix = kind === "paravirtual" ? "vif" : "tap";
  return parseInterfaceName(`${prefix}${domid}.${device}`, "device");
}

/** The domid and device of a dom0 VIF name, or undefined for any other name. */
export function parseVifDeviceName(name: string): { kind: "paravirtual" | "emulated"; domid: number; device: number } | undefined {
  const match = /^(vif|tap)(\d+)\.(\d+)$/.exec(name);
  if (match === null) return undefined;
  return { kind: match[1] === "vif" ? "paravirtual" : "emulated", domid: Number(match[2]), device: Number(match[3]) };
}

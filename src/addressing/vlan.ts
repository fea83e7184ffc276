import { InvalidArgumentError } from "../errors.js";

/** An 802.1Q VLAN id usable for a tagged network: 1–4094 (0 and 4095 are reserved). */
export type VlanId = number & { readonly __brand: "VlanId" };

export function parseVlanId(input: unknown, field = "vlan"): VlanId {
  let value: number;
  if (typeof input === "number") {
    value = input;
  } else if (typeof input === "string" && /^\d{1,5}$/.test(input)) {
    value = Number(input);
  } else {
    throw new InvalidArgumentError(field, `expected a VLAN id from 1 to 4094, got ${JSON.stringify(input)}`);
  }
  if (!Number.isInteger(value) || value < 1 || value > 4094) {
    throw new InvalidArgumentError(field, `VLAN id ${value} is out of range: 802.1Q VLAN ids are 1 to 4094 (0 and 4095 are reserved)`);
  }
  return value as VlanId;
}

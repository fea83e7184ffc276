import { InvalidArgumentError } from "../errors.js";

/** What `v6agent lab` builds. */
export interface LabOptions {
  /** Guests, the last of which attacks the others (at least 2). */
  guests: number;
  backend: "nft" | "xtables";
  hypervisor: "kvm" | "xenserver";
  /** Real VMs (libvirt/QEMU on KVM) or network-namespace guests (the simulated XenServer's dom0 plugs them). */
  guestKind: "vm" | "netns";
  /** Leave the lab up after the run (`v6agent lab down` removes it). */
  keep: boolean;
  /** Where the lab keeps its record and files (default /run/v6agent-lab). */
  dir?: string;
}

export interface LabCommandInput {
  guests?: string;
  backend?: string;
  hypervisor?: string;
  guestKind?: string;
  keep?: boolean;
}

export const MAX_LAB_GUESTS = 8;

/**
 * Validates the command line. `--guest-kind netns` needs a hypervisor that gives a namespace a
 * port on the guest bridge: the XenServer simulator's dom0 does (real `vif<domid>.0` veths), so
 * it implies `--hypervisor xenserver`; libvirt has no such guest, so `kvm` with netns is refused.
 * XenServer guests are always namespaces (the simulator runs no VMs).
 */
export function parseLabOptions(input: LabCommandInput, defaults: { kvmAvailable: boolean }): LabOptions {
  const guests = input.guests === undefined ? 2 : Number(input.guests);
  if (!Number.isInteger(guests) || guests < 2 || guests > MAX_LAB_GUESTS) {
    throw new InvalidArgumentError(
      "--guests",
      `${JSON.stringify(input.guests)}: expected an integer from 2 to ${MAX_LAB_GUESTS} (at least one victim and one attacker)`,
    );
  }
  const backend = choice(input.backend ?? "nft", "--backend", ["nft", "xtables"] as const);
  const guestKind = input.guestKind === undefined ? undefined : choice(input.guestKind, "--guest-kind", ["vm", "netns"] as const);
  let hypervisor = input.hypervisor === undefined ? undefined : choice(input.hypervisor, "--hypervisor", ["kvm", "xenserver"] as const);
  if (hypervisor === "kvm" && guestKind === "netns") {
    throw new InvalidArgumentError(
      "--guest-kind",
      "netns guests need a hypervisor that plugs a namespace into the guest bridge: use --hypervisor xenserver (the simulated dom0 does it), or --guest-kind vm with kvm",
    );
  }
  if (hypervisor === "xenserver" && guestKind === "vm") {
    throw new InvalidArgumentError(
      "--guest-kind",
      "the simulated XenServer runs no VMs: its guests are network namespaces (--guest-kind netns)",
    );
  }
  hypervisor ??= guestKind === "netns" || !defaults.kvmAvailable ? "xenserver" : "kvm";
  return { guests, backend, hypervisor, guestKind: hypervisor === "kvm" ? "vm" : "netns", keep: input.keep === true };
}

function choice<T extends string>(value: string, field: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(field, `${JSON.stringify(value)}: expected one of ${choices.join(", ")}`);
  }
  return value as T;
}

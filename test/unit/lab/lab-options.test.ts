import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../../src/errors.js";
import { parseLabOptions } from "../../../src/lab/lab-options.js";

describe("parseLabOptions", () => {
  it("defaults to 2 guests, nft, and KVM VMs when KVM is installed, else the XenServer simulator", () => {
    expect(parseLabOptions({}, { kvmAvailable: true })).toEqual({
      guests: 2,
      backend: "nft",
      hypervisor: "kvm",
      guestKind: "vm",
      keep: false,
    });
    expect(parseLabOptions({}, { kvmAvailable: false })).toMatchObject({ hypervisor: "xenserver", guestKind: "netns" });
  });

  it("--guest-kind netns implies the XenServer simulator (its dom0 plugs namespaces in)", () => {
    expect(parseLabOptions({ guestKind: "netns" }, { kvmAvailable: true })).toMatchObject({ hypervisor: "xenserver", guestKind: "netns" });
    expect(parseLabOptions({ hypervisor: "xenserver" }, { kvmAvailable: true })).toMatchObject({ guestKind: "netns" });
  });

  it("refuses kvm with netns guests, xenserver with VMs, and says why", () => {
    expect(() => parseLabOptions({ hypervisor: "kvm", guestKind: "netns" }, { kvmAvailable: true })).toThrow(
      /--guest-kind: netns guests need a hypervisor that plugs a namespace into the guest bridge: use --hypervisor xenserver/,
    );
    expect(() => parseLabOptions({ hypervisor: "xenserver", guestKind: "vm" }, { kvmAvailable: true })).toThrow(
      /--guest-kind: the simulated XenServer runs no VMs/,
    );
  });

  it("needs at least one victim and one attacker, and names the flag of a bad value", () => {
    for (const guests of ["1", "0", "x", "2.5", "9"]) {
      expect(() => parseLabOptions({ guests }, { kvmAvailable: true })).toThrow(InvalidArgumentError);
      expect(() => parseLabOptions({ guests }, { kvmAvailable: true })).toThrow(/^--guests: .*at least one victim and one attacker/);
    }
    expect(parseLabOptions({ guests: "3", keep: true }, { kvmAvailable: true })).toMatchObject({ guests: 3, keep: true });
    expect(() => parseLabOptions({ backend: "iptables" }, { kvmAvailable: true })).toThrow(
      /^--backend: "iptables": expected one of nft, xtables/,
    );
    expect(() => parseLabOptions({ hypervisor: "xen" }, { kvmAvailable: true })).toThrow(
      /^--hypervisor: "xen": expected one of kvm, xenserver/,
    );
  });
});

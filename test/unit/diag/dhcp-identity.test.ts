import { describe, expect, it } from "vitest";
import { dhcpIdentityChecks } from "../../../src/diag/dhcp-identity.js";

const vif = (mac: string, device: string, observedDuid?: { duid: string; type: number; typeName: string; matchesDuidLL: boolean }) => ({
  vmUuid: `vm-${device}`,
  mac,
  duidLL: `00:03:00:01:${mac}`,
  linkLocal: "fe80::1",
  device,
  ...(observedDuid === undefined ? {} : { observedDuid }),
});
const llt = { duid: "00:01:00:01:32:a2:fc:fa:52:54:00:00:00:ff", type: 1, typeName: "DUID-LLT", matchesDuidLL: false };

describe("diag's DHCPv6 identity checks", () => {
  it("names each VIF whose guest sends another DUID, with the guest-config call", () => {
    const checks = dhcpIdentityChecks([vif("52:54:00:00:00:0a", "vnet0", llt), vif("52:54:00:00:00:0b", "vnet1")]);
    expect(checks).toEqual([
      {
        name: "dhcp6.duid.vnet0",
        status: "warn",
        message:
          "vm vm-vnet0 NIC 52:54:00:00:00:0a: sends DUID-LLT 00:01:00:01:32:a2:fc:fa:52:54:00:00:00:ff; it will not get its reserved address; see `v6agent guest-config --os dhclient` (ISC dhclient's default is DUID-LLT; also debian-ifupdown, centos6)",
        fix: "make the guest send its DUID-LL 00:03:00:01:52:54:00:00:00:0a (v6agent guest-config --os <os> --mac 52:54:00:00:00:0a prints how)",
      },
    ]);
  });

  it("flags two VIFs sending one DUID", () => {
    const checks = dhcpIdentityChecks([vif("52:54:00:00:00:0a", "vnet0", llt), vif("52:54:00:00:00:0b", "vnet1", llt)]);
    expect(checks.map((check) => check.name)).toEqual([
      "dhcp6.duid.vnet0",
      "dhcp6.duid.vnet1",
      "dhcp6.duid-shared.0001000132a2fcfa5254000000ff",
    ]);
    expect(checks[2]?.message).toBe(
      "vm vm-vnet0 NIC 52:54:00:00:00:0a and vm vm-vnet1 NIC 52:54:00:00:00:0b send the same DUID 00:01:00:01:32:a2:fc:fa:52:54:00:00:00:ff: a DHCPv6 server gives them one lease (guests cloned from one image?)",
    );
  });

  it("is content with guests that send their DUID-LL, and silent before any was seen", () => {
    const ll = (mac: string) => ({ duid: `00:03:00:01:${mac}`, type: 3, typeName: "DUID-LL", matchesDuidLL: true });
    expect(dhcpIdentityChecks([vif("52:54:00:00:00:0a", "vnet0", ll("52:54:00:00:00:0a"))])).toEqual([
      { name: "dhcp6.duid", status: "ok", message: "1 VIF(s) seen sending their DUID-LL" },
    ]);
    expect(dhcpIdentityChecks([vif("52:54:00:00:00:0a", "vnet0")])).toEqual([]);
  });
});

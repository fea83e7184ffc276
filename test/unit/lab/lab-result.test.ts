import { describe, expect, it } from "vitest";
import { formatLabResult, type LabGuestResult, type LabResult } from "../../../src/lab/lab-result.js";
import { labGuests } from "../../../src/lab/run-lab.js";

const victim: LabGuestResult = {
  name: "v6lab-g1",
  role: "victim",
  mac: "52:54:00:6c:00:01",
  duidLL: "00:03:00:01:52:54:00:6c:00:01",
  linkLocal: "fe80::5054:ff:fe6c:1",
  device: "vif1.0",
  expected: "2001:db8:6c:1::101",
  obtained: ["2001:db8:6c:1::101"],
  dhcpClient: true,
  attack: { rogueRouteAbsent: true, rogueAddressAbsent: true, defaultRouteKept: true, addressKept: true, routersSeen: ["fe80::1"] },
  drops: { ra: 0, dhcpv6Server: 0 },
};
const attacker: LabGuestResult = {
  ...victim,
  name: "v6lab-g2",
  role: "attacker",
  mac: "52:54:00:6c:00:02",
  expected: "2001:db8:6c:1::102",
  obtained: [],
  dhcpClient: false,
  drops: { ra: 3, dhcpv6Server: 1 },
};
delete attacker.attack;

function result(guests: LabGuestResult[], ok: boolean): LabResult {
  return {
    ok,
    hypervisor: "kvm",
    guestKind: "vm",
    backend: "nft",
    network: "2001:db8:6c:1::/64",
    bridge: "v6net641fe8acf5",
    router: "2001:db8:6c:1::1",
    roguePrefix: "2001:db8:bad:1::/64",
    guests,
    addressesOk: ok,
    attacksDropped: ok,
    seconds: 42.5,
    kept: false,
  };
}

describe("the lab's result table", () => {
  it("shows each guest's identity, addresses, attack result and drop counters, then the verdict", () => {
    const lines = formatLabResult(result([victim, attacker], true)).split("\n");
    expect(lines[0]).toMatch(/^guest\s+role\s+MAC\s+DUID-LL\s+link-local\s+expected\s+obtained\s+attack\s+drops \(RA\/DHCPv6\)$/);
    expect(lines[1]).toMatch(
      /^v6lab-g1\s+victim\s+52:54:00:6c:00:01\s+00:03:00:01:52:54:00:6c:00:01\s+fe80::5054:ff:fe6c:1\s+2001:db8:6c:1::101\s+2001:db8:6c:1::101\s+unaffected\s+0\/0$/,
    );
    expect(lines[2]).toMatch(/^v6lab-g2\s+attacker\s.*\(rogue router\)\s+sent rogue RA\+DHCPv6: dropped\s+3\/1$/);
    expect(lines).toContain("addresses: every guest holds its reserved address");
    expect(lines).toContain("the lab has been removed");
  });

  it("says plainly what went wrong", () => {
    const hit = {
      ...victim,
      obtained: ["2001:db8:bad:1::1f4"],
      attack: { ...(victim.attack as NonNullable<LabGuestResult["attack"]>), rogueAddressAbsent: false, addressKept: false },
    };
    const text = formatLabResult(result([hit, { ...attacker, drops: { ra: 0, dhcpv6Server: 0 } }], false));
    expect(text).toContain("AFFECTED (rogue address, lost address)");
    expect(text).toContain("NOT dropped");
    expect(text).toContain("NOT every attack was dropped");
  });
});

describe("labGuests", () => {
  it("makes N−1 victims and one attacker with lab-prefixed names, unicast MACs and addresses in the lab /64", () => {
    const guests = labGuests(3);
    expect(guests.map((guest) => [guest.name, guest.role, guest.mac, guest.expected])).toEqual([
      ["v6lab-g1", "victim", "52:54:00:6c:00:01", "2001:db8:6c:1::101"],
      ["v6lab-g2", "victim", "52:54:00:6c:00:02", "2001:db8:6c:1::102"],
      ["v6lab-g3", "attacker", "52:54:00:6c:00:03", "2001:db8:6c:1::103"],
    ]);
  });
});

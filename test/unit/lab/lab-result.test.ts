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
  observedDuid: "DUID-LL 00:03:00:01:52:54:00:6c:00:01",
  duidMatches: true,
};
const unconfigured: LabGuestResult = {
  ...victim,
  name: "v6lab-g3",
  role: "duid-llt",
  mac: "52:54:00:6c:00:03",
  expected: "2001:db8:6c:1::103",
  obtained: [],
  observedDuid: "DUID-LLT 00:01:00:01:32:a2:fc:fa:52:54:00:6c:00:03",
  duidMatches: false,
};
delete unconfigured.attack;
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
    identitiesOk: ok,
    seconds: 42.5,
    kept: false,
  };
}

describe("the lab's result table", () => {
  it("shows each guest's identity, addresses, attack result and drop counters, then the verdict", () => {
    const lines = formatLabResult(result([victim, attacker, unconfigured], true)).split("\n");
    expect(lines[0]).toMatch(
      /^guest\s+role\s+MAC\s+DUID-LL\s+link-local\s+expected\s+obtained\s+attack\s+drops \(RA\/DHCPv6\)\s+DUID sent \(seen by the agent\)$/,
    );
    expect(lines[1]).toMatch(
      /^v6lab-g1\s+victim\s+52:54:00:6c:00:01\s+00:03:00:01:52:54:00:6c:00:01\s+fe80::5054:ff:fe6c:1\s+2001:db8:6c:1::101\s+2001:db8:6c:1::101\s+unaffected\s+0\/0\s+DUID-LL \(matches\)$/,
    );
    expect(lines[2]).toMatch(/^v6lab-g2\s+attacker\s.*\(rogue router\)\s+sent rogue RA\+DHCPv6: dropped\s+3\/1\s+-$/);
    expect(lines[3]).toMatch(
      /^v6lab-g3\s+duid-llt\s.*2001:db8:6c:1::103\s+-\s+-\s+0\/0\s+DUID-LLT 00:01:00:01:32:a2:fc:fa:52:54:00:6c:00:03 \(mismatch: no address\)$/,
    );
    expect(lines).toContain("addresses: every guest asking by DUID-LL holds its reserved address; the DUID-LLT guest got none");
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
  it("makes N−1 victims, one attacker and one DUID-LLT guest with lab-prefixed names, unicast MACs and addresses in the lab /64", () => {
    const guests = labGuests(3);
    expect(guests.map((guest) => [guest.name, guest.role, guest.mac, guest.expected])).toEqual([
      ["v6lab-g1", "victim", "52:54:00:6c:00:01", "2001:db8:6c:1::101"],
      ["v6lab-g2", "victim", "52:54:00:6c:00:02", "2001:db8:6c:1::102"],
      ["v6lab-g3", "attacker", "52:54:00:6c:00:03", "2001:db8:6c:1::103"],
      ["v6lab-g4", "duid-llt", "52:54:00:6c:00:04", "2001:db8:6c:1::104"],
    ]);
  });
});

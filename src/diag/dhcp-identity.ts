import { guestConfigHint } from "../dhcp-observe/guest-hint.js";
import { type CheckResult, type DiagVif, ok, warn } from "./check.js";

/**
 * What guests send as their DHCPv6 identity, as the agent saw it at their ports: a VIF whose
 * guest sends any DUID but the DUID-LL of its MAC gets no reserved address, and VIFs sending one
 * DUID between them (guests cloned from one image) get one lease between them. A guest's
 * configuration, not the host's: warnings, with the guest-config call that fixes it.
 */
export function dhcpIdentityChecks(vifs: readonly DiagVif[]): CheckResult[] {
  const checks: CheckResult[] = [];
  const seen = vifs.filter((vif) => vif.observedDuid !== undefined);
  for (const vif of seen) {
    const observed = vif.observedDuid as NonNullable<DiagVif["observedDuid"]>;
    if (observed.matchesDuidLL) continue;
    checks.push(
      warn(
        `dhcp6.duid.${vif.device ?? vif.mac}`,
        `vm ${vif.vmUuid} NIC ${vif.mac}: sends ${observed.typeName} ${observed.duid}; it will not get its reserved address; see ${guestConfigHint(observed)}`,
        `make the guest send its DUID-LL ${vif.duidLL} (v6agent guest-config --os <os> --mac ${vif.mac} prints how)`,
      ),
    );
  }
  const byDuid = new Map<string, DiagVif[]>();
  for (const vif of seen) {
    const duid = (vif.observedDuid as NonNullable<DiagVif["observedDuid"]>).duid;
    byDuid.set(duid, [...(byDuid.get(duid) ?? []), vif]);
  }
  for (const [duid, sharing] of byDuid) {
    if (sharing.length < 2) continue;
    checks.push(
      warn(
        `dhcp6.duid-shared.${duid.replaceAll(":", "")}`,
        `${sharing.map((vif) => `vm ${vif.vmUuid} NIC ${vif.mac}`).join(" and ")} send the same DUID ${duid}: a DHCPv6 server gives them one lease (guests cloned from one image?)`,
        "give each guest its own DUID: configure DUID-LL (v6agent guest-config), which is made from each NIC's MAC",
      ),
    );
  }
  if (checks.length === 0 && seen.length > 0) {
    checks.push(ok("dhcp6.duid", `${seen.length} VIF(s) seen sending their DUID-LL`));
  }
  return checks;
}

import type { ObservedDuid } from "../protocol/index.js";
import type { DhcpIdentityStore } from "./identity-store.js";

/** What `vif.report` says about the DHCPv6 identity seen on `device` (absent until one was seen). */
export function observedDuidOf(store: DhcpIdentityStore, device: string): ObservedDuid | undefined {
  const observation = store.get(device);
  if (observation === undefined) return undefined;
  const iaid = observation.ias[0]?.iaid;
  const sharedWith = store.sharing(device).flatMap((other) => store.get(other)?.mac ?? []);
  return {
    duid: observation.duid.hex,
    type: observation.duid.type,
    typeName: observation.duid.typeName,
    ...(iaid === undefined ? {} : { iaid }),
    matchesDuidLL: observation.matches,
    ...(sharedWith.length === 0 ? {} : { sharedWith: [...new Set(sharedWith)].sort().slice(0, 64) }),
  };
}

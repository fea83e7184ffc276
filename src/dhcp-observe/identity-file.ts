import { parseMac } from "../addressing/index.js";
import { InvalidArgumentError } from "../errors.js";
import type { IaKind } from "./dhcpv6-message.js";
import { parseDuid } from "./duid.js";
import type { DhcpIdentityStore, DuidObservation } from "./identity-store.js";

/**
 * The identity evidence on disk (`<stateDir>/dhcp-identities.json`), so it survives a restart
 * and `v6agent diag`, a process of its own, can read what the daemon saw. Only what was seen is
 * kept; whether it matches is worked out again on load.
 */
export type SavedObservation = Omit<DuidObservation, "matches" | "expected">;

export const IDENTITY_FILE_VERSION = 1;
const MAX_ENTRIES = 100_000;
const IA_KINDS: readonly IaKind[] = ["IA_NA", "IA_TA", "IA_PD"];

export function savedObservations(store: DhcpIdentityStore): SavedObservation[] {
  return store.list().map(({ matches: _matches, expected: _expected, ...saved }) => saved);
}

/** Checks a loaded file's payload (a throw marks the file corrupt) and rebuilds the observations. */
export function parseSavedObservations(raw: unknown): SavedObservation[] {
  if (!Array.isArray(raw) || raw.length > MAX_ENTRIES)
    throw new InvalidArgumentError("observations", `expected an array of at most ${MAX_ENTRIES}`);
  return raw.map((entry: unknown, index) => {
    const field = `observations[${index}]`;
    if (typeof entry !== "object" || entry === null) throw new InvalidArgumentError(field, "expected an object");
    const e = entry as Record<string, unknown>;
    if (typeof e.device !== "string" || e.device.length === 0 || e.device.length > 15)
      throw new InvalidArgumentError(`${field}.device`, "expected an interface name");
    // The DUID is rebuilt from its bytes: the other fields of the saved object are not trusted.
    const text = (e.duid as { hex?: unknown } | undefined)?.hex;
    const hex = typeof text === "string" && /^[0-9a-f]{2}(:[0-9a-f]{2}){0,129}$/.test(text) ? text : undefined;
    const duid = hex === undefined ? undefined : parseDuid(Uint8Array.from(hex.split(":"), (b) => Number.parseInt(b, 16)));
    if (duid === undefined || !duid.ok) throw new InvalidArgumentError(`${field}.duid`, "expected a DUID as colon hex");
    const numbers = ["firstSeen", "lastSeen", "messages"] as const;
    for (const key of numbers) {
      if (typeof e[key] !== "number" || !Number.isSafeInteger(e[key]) || (e[key] as number) < 0)
        throw new InvalidArgumentError(`${field}.${key}`, "expected a whole number");
    }
    const ias = Array.isArray(e.ias) ? e.ias.slice(0, 8) : [];
    return {
      device: e.device,
      mac: parseMac(e.mac, `${field}.mac`),
      duid: duid.duid,
      ias: ias.flatMap((ia: unknown) => {
        const { kind, iaid } = (ia ?? {}) as { kind?: unknown; iaid?: unknown };
        return IA_KINDS.includes(kind as IaKind) && Number.isInteger(iaid) && (iaid as number) >= 0 && (iaid as number) <= 0xffffffff
          ? [{ kind: kind as IaKind, iaid: iaid as number }]
          : [];
      }),
      lastMessage: typeof e.lastMessage === "string" ? e.lastMessage.slice(0, 32) : "unknown",
      firstSeen: e.firstSeen as number,
      lastSeen: e.lastSeen as number,
      messages: e.messages as number,
    };
  });
}

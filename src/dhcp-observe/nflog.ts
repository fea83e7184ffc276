import type { NflogAddon, NflogPacket, NflogReader, NflogReaderStats } from "../../native/index.js";
import { V6Error } from "../errors.js";
import { loadNativeAddon } from "../native.js";

export type { NflogPacket, NflogReader, NflogReaderStats };

export interface NflogOptions {
  group: number;
  /** A network namespace name (as `ip netns` knows it); default: the agent's own. */
  netns?: string | undefined;
}

/**
 * Binds an NFLOG group through the native reader (native/src/nflog.cc). The callback runs on
 * the event loop with each batch of packets; the reader keeps the process alive until closed.
 */
export function openNflog(options: NflogOptions, onPackets: (packets: NflogPacket[]) => void): NflogReader {
  if (!Number.isInteger(options.group) || options.group < 0 || options.group > 65535) {
    throw new V6Error("invalid_argument", `NFLOG group ${options.group}: expected an integer 0..65535`);
  }
  if (options.netns !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(options.netns)) {
    throw new V6Error("invalid_argument", `network namespace name ${JSON.stringify(options.netns)}`);
  }
  const addon = loadNativeAddon<NflogAddon>("v6agent_nflog");
  try {
    return new addon.NflogReader(
      { group: options.group, ...(options.netns === undefined ? {} : { netns: `/run/netns/${options.netns}` }) },
      onPackets,
    );
  } catch (error) {
    throw new V6Error("host_failure", `NFLOG group ${options.group}: ${(error as Error).message}`, { cause: error });
  }
}

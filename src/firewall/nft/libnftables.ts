import type { NftAddon, NftErrorShape } from "../../../native/index.js";
import { loadNativeAddon } from "../../native.js";

/**
 * nft scripts run in-process through libnftables (native/src/nftables.cc): the same language,
 * transaction and error texts as `nft -f -`, without starting a process per change, which on
 * its own costs more than a one-port transaction. The addon keeps one context per namespace
 * open between calls: closing one after a commit waits for an RCU grace period (8-20 ms on an
 * untuned kernel), which would otherwise be the floor of every change.
 */

export class NftError extends Error {
  override readonly name = "NftError";
  constructor(
    message: string,
    /** nft's own error text. */
    readonly stderr: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface NftCallOptions {
  /** A network namespace name (as `ip netns` knows it). */
  netns?: string | undefined;
  json?: boolean;
  dryRun?: boolean;
}

/** Runs one nft script (one transaction); resolves to nft's output, rejects with `NftError`. */
export async function nft(script: string, options: NftCallOptions = {}): Promise<string> {
  checkNetns(options.netns);
  const addon = loadNativeAddon<NftAddon>("v6agent_nftables");
  try {
    const { output } = await addon.run(script, {
      ...(options.netns === undefined ? {} : { netns: `/run/netns/${options.netns}` }),
      json: options.json ?? false,
      dryRun: options.dryRun ?? false,
    });
    return output;
  } catch (error) {
    // The script is run as an in-memory file; name it for what it is.
    const stderr = ((error as Partial<NftErrorShape>).stderr ?? String((error as Error).message ?? error)).replace(
      /\/proc\/self\/fd\/\d+:/g,
      "script:",
    );
    throw new NftError(stderr.trim() || "nft: the transaction failed", stderr, { cause: error });
  }
}

/**
 * The ruleset generation of the namespace: it changes with every committed transaction of any
 * table there (ours, another program's, a hand edit) and not with packets.
 */
export async function rulesetGeneration(netns?: string): Promise<number> {
  checkNetns(netns);
  const addon = loadNativeAddon<NftAddon>("v6agent_nftables");
  try {
    return await addon.generation(netns === undefined ? {} : { netns: `/run/netns/${netns}` });
  } catch (error) {
    throw new NftError(String((error as Error).message ?? error), "", { cause: error });
  }
}

/**
 * Closes the kept context of `netns` (or of every namespace without an argument). Never needed
 * for correctness (a deleted namespace's context is closed within a second, an idle one after
 * ten); tests use it to measure, and to let a namespace go at once.
 */
export async function releaseNft(netns?: string | null): Promise<void> {
  const addon = loadNativeAddon<NftAddon>("v6agent_nftables");
  if (netns === undefined) return addon.release();
  if (netns !== null) checkNetns(netns);
  return addon.release(netns === null ? {} : { netns: `/run/netns/${netns}` });
}

/** Namespaces whose nft contexts are kept open now. */
export function keptNftContexts(): number {
  return loadNativeAddon<NftAddon>("v6agent_nftables").keptNamespaces();
}

function checkNetns(netns: string | undefined): void {
  if (netns !== undefined && !/^[A-Za-z0-9_.-]+$/.test(netns)) {
    throw new NftError(`netns: ${JSON.stringify(netns)} is not a namespace name`, "");
  }
}

/** nft's answer when a table, chain, set or element named in the script does not exist. */
export function isNotFound(error: unknown): boolean {
  return error instanceof NftError && /No such file or directory/.test(error.stderr);
}

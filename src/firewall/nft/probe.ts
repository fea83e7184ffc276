import { nft } from "./libnftables.js";
import type { NftCapabilities } from "./names.js";

/**
 * What the kernel and libnftables offer, checked without committing anything (a dry run, which
 * the kernel aborts: one RCU grace period each, so it is done once per backend, at start).
 */

/** Whether the kernel accepts `meta ibrname` in a bridge table. */
export async function probeNftCapabilities(netns?: string): Promise<NftCapabilities> {
  const script = [
    "add table bridge v6agent_probe",
    "add chain bridge v6agent_probe c { type filter hook prerouting priority 0; }",
    'add rule bridge v6agent_probe c meta ibrname "probe0" accept',
  ].join("\n");
  try {
    await nft(script, { netns, dryRun: true });
    return { bridgeMeta: true };
  } catch {
    return { bridgeMeta: false };
  }
}

/** libnftables loads and the kernel accepts a bridge-family table. */
export async function nftBridgeWorks(netns?: string): Promise<boolean> {
  try {
    await nft("add table bridge v6agent_probe\nadd chain bridge v6agent_probe c { type filter hook prerouting priority 0; }\n", {
      netns,
      dryRun: true,
    });
    return true;
  } catch {
    return false;
  }
}

import { run } from "../../exec.js";
import { nft } from "./libnftables.js";
import { TABLE } from "./names.js";

/**
 * The nft backend's rules as another backend sees them: `table bridge v6agent`, found and
 * removed through libnftables or, where the addon cannot load (the case that once left two rule
 * sets live), through the `nft` binary. Where neither exists nothing can have made the table.
 */

type Nft = (script: string) => Promise<string>;

async function nftTool(netns: string | undefined): Promise<Nft | undefined> {
  try {
    await nft("list tables bridge", { netns });
    return (script) => nft(script, { netns });
  } catch {
    // The addon is not built or libnftables is missing: try the binary.
  }
  try {
    await run("nft", ["list", "tables", "bridge"], { netns });
    return async (script) => (await run("nft", ["-f", "-"], { input: `${script}\n`, netns })).stdout;
  } catch {
    return undefined;
  }
}

/** `["table bridge v6agent"]` when that table is live; empty when not, or when no nft tool exists. */
export async function nftLeftovers(netns?: string): Promise<string[]> {
  const tool = await nftTool(netns);
  if (tool === undefined) return [];
  const tables = await tool("list tables bridge");
  return tables.split("\n").some((line) => line.trim() === `table bridge ${TABLE}`) ? [`nftables: table bridge ${TABLE}`] : [];
}

/** Deletes `table bridge v6agent` (idempotently); throws when it exists and cannot be removed. */
export async function removeNftLeftovers(netns?: string): Promise<void> {
  const tool = await nftTool(netns);
  if (tool === undefined) return;
  await tool(`add table bridge ${TABLE}\ndelete table bridge ${TABLE}`);
}

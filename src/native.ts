import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { V6Error } from "./errors.js";

const loaded = new Map<string, unknown>();

/**
 * Loads one of native/'s addons (`native/build/Release/<name>.node`) from src/ (tests) or
 * dist/src/ (built), once. Throws `unavailable` with the fix when it is not built.
 */
export function loadNativeAddon<T>(name: "v6agent_libvirt" | "v6agent_nftables" | "v6agent_nflog"): T {
  const cached = loaded.get(name);
  if (cached !== undefined) return cached as T;
  const require = createRequire(import.meta.url);
  let directory = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 6; depth++) {
    const candidate = join(directory, "native", "build", "Release", `${name}.node`);
    if (existsSync(candidate)) {
      const addon = require(candidate) as T;
      loaded.set(name, addon);
      return addon;
    }
    directory = dirname(directory);
  }
  throw new V6Error("unavailable", `the ${name} addon is not built (native/build/Release/${name}.node); run \`npm run build\``);
}

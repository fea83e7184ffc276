import { readFileSync } from "node:fs";

/** The package version, read once from package.json (found from both src/ and dist/src/). */
export const VERSION: string = readVersion();

function readVersion(): string {
  for (const relative of ["../package.json", "../../package.json"]) {
    try {
      const text = readFileSync(new URL(relative, import.meta.url), "utf8");
      const parsed = JSON.parse(text) as { name?: string; version?: string };
      if (parsed.name === "v6agent" && typeof parsed.version === "string") return parsed.version;
    } catch {
      // try the next location
    }
  }
  return "0.0.0-unknown";
}

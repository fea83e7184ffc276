// Writes src/protocol/checks.generated.ts (run through `npm run gen:checks`).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { CHECKS_FILE, checksModuleText } from "./checks-source.js";

// From src/protocol/ (tsx) or dist/src/protocol/ (compiled): the repository root.
const root = join(import.meta.dirname, "..", "..", ...(import.meta.dirname.includes("/dist/") ? [".."] : []));
writeFileSync(join(root, CHECKS_FILE), checksModuleText());

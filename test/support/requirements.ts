import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

/**
 * Integration and e2e tests declare what they need. Locally a missing requirement skips the
 * test with the reason; under CI (CI=true) everything is installed, so a missing requirement
 * is a failure, never a silent skip.
 */
export interface Requirement {
  root?: boolean;
  commands?: readonly string[];
  /** Files the test reads, with how to get them (e.g. the build's dist/src/cli.js). */
  files?: readonly { path: string; from: string }[];
}

export function missingRequirements(requirement: Requirement): string[] {
  const missing: string[] = [];
  if (requirement.root && process.getuid?.() !== 0) missing.push("root");
  for (const command of requirement.commands ?? []) {
    try {
      execFileSync("sh", ["-c", 'command -v "$1"', "sh", command], { stdio: "ignore" });
    } catch {
      missing.push(`command ${command}`);
    }
  }
  for (const file of requirement.files ?? []) {
    if (!existsSync(file.path)) missing.push(`${file.path} (${file.from})`);
  }
  return missing;
}

/** Returns the skip reason, or undefined when the test can run; throws under CI. */
export function skipReason(requirement: Requirement): string | undefined {
  const missing = missingRequirements(requirement);
  if (missing.length === 0) return undefined;
  const reason = `needs ${missing.join(", ")}`;
  if (process.env.CI) throw new Error(`CI must run every test, but this one ${reason}`);
  return reason;
}

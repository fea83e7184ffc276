import { findInPath } from "../diag/tools.js";
import { type LabCommandInput, parseLabOptions } from "../lab/lab-options.js";
import { formatLabResult } from "../lab/lab-result.js";
import { labDown } from "../lab/lab-teardown.js";
import { assertLabCanRun, BACKEND_TOOLS, COMMON_TOOLS, type LabTool, VM_TOOLS } from "../lab/preflight.js";
import { type LabProgress, runLab } from "../lab/run-lab.js";
import { CliExit } from "./exit.js";

export interface LabCommandOptions extends LabCommandInput {
  json?: boolean;
}

/** Tools a lab of this kind runs (preflight names the package of each missing one). */
export function labTools(hypervisor: "kvm" | "xenserver", backend: "nft" | "xtables"): LabTool[] {
  return [
    ...COMMON_TOOLS,
    ...BACKEND_TOOLS[backend],
    ...(hypervisor === "kvm" ? [...VM_TOOLS, { command: "virsh", debianPackage: "libvirt-clients" }] : []),
  ];
}

/** A live line per step on a terminal: the running step, then a tick (or cross) with its time. */
function terminalProgress(stream: NodeJS.WriteStream): LabProgress {
  const startedAt = new Map<string, number>();
  return ({ step, status, detail }) => {
    if (status === "start") {
      startedAt.set(step, Date.now());
      stream.write(`\r\x1b[K… ${step}`);
      return;
    }
    const seconds = ((Date.now() - (startedAt.get(step) ?? Date.now())) / 1000).toFixed(1);
    const mark = status === "done" ? "✓" : "✗";
    stream.write(`\r\x1b[K${mark} ${step}${detail === undefined ? "" : `: ${detail}`} (${seconds} s)\n`);
  };
}

/** Root's tools live in the sbin directories; preflight looks there, so the lab runs them from there too. */
function withSbinInPath(): void {
  const path = (process.env.PATH ?? "").split(":").filter(Boolean);
  for (const directory of ["/usr/sbin", "/sbin"]) if (!path.includes(directory)) path.push(directory);
  process.env.PATH = path.join(":");
}

export async function runLabCommand(options: LabCommandOptions): Promise<void> {
  withSbinInPath();
  const kvmAvailable = labTools("kvm", "nft").every((tool) => findInPath(tool.command) !== undefined);
  const labOptions = parseLabOptions(options, { kvmAvailable });
  assertLabCanRun(labTools(labOptions.hypervisor, labOptions.backend));
  const progress = process.stderr.isTTY ? terminalProgress(process.stderr) : () => {};
  const result = await runLab(labOptions, progress);
  process.stdout.write(options.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatLabResult(result)}\n`);
  if (!result.ok) throw new CliExit(1);
}

export async function runLabDownCommand(options: { json?: boolean }): Promise<void> {
  assertLabCanRun([]);
  const summary = await labDown();
  if (options.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  else {
    process.stdout.write(
      `removed: ${summary.processes} processes, domains [${summary.domains.join(" ")}], links [${summary.links.join(" ")}], namespaces [${summary.namespaces.join(" ")}]${summary.firewall.length > 0 ? `, rules [${summary.firewall.join("; ")}]` : ""}\n`,
    );
  }
  if (summary.problems.length > 0) {
    for (const problem of summary.problems) process.stderr.write(`v6agent lab down: ${problem}\n`);
    throw new CliExit(1);
  }
}

import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../../../src/exec.js";
import { skipReason } from "../../support/requirements.js";

/**
 * "Every command shown in the docs is exercised by a test." The convention (docs/operators.md
 * says it too): in a ```sh block of README.md or docs/*.md, a line starting with `$ ` is a
 * command (a trailing `\` continues it), the lines after it up to the next command are its
 * output, and `...` on a line of its own stands for any number of output lines. Every command
 * must be listed below: run here (its shown output compared with the real one), started as a
 * daemon until it prints its first line, exercised by another named test, or not runnable here
 * with the reason. A command in the docs that is not listed fails this test, as does a listed
 * command the docs no longer show.
 */

const ROOT = new URL("../../../", import.meta.url).pathname;
const CLI = join(ROOT, "dist/src/cli.js");

type Handling =
  /** Run with bash in the shared scratch directory, `v6agent` being this build. */
  | { kind: "run"; exitCodes?: number[]; check?: (stdout: string) => void }
  /** A server: started with the doc's ports swapped for free ones, judged by its first line, stopped. */
  | { kind: "daemon" }
  /** Exercised by another test (the path must exist). */
  | { kind: "tested-in"; test: string }
  | { kind: "cannot-run"; reason: string };

const NO_SYSTEMD =
  "needs systemd, which this machine does not run; packaging/v6agent.service is checked by test/integration/packaging/systemd-unit.test.ts";
const WRITES_HOST = "installs into the machine's /etc or /usr; the file it installs is tested instead";
const PACKAGES_TEST = "test/integration/packaging/deb.test.ts";
const INSTALLS_PACKAGE = `changes this machine's packages; ${PACKAGES_TEST} installs the same package`;

const COMMANDS = new Map<string, Handling>([
  // README.md
  ["scripts/lab.sh", { kind: "cannot-run", reason: "builds and runs the whole lab (minutes, libvirtd); the lab's own e2e tests run it" }],
  ["scripts/test.sh", { kind: "cannot-run", reason: "runs every test, this one included (recursion)" }],
  ...[
    "node dist/src/cli.js lab",
    "node dist/src/cli.js lab down",
    "node dist/src/cli.js lab --keep",
    "cat /run/v6agent-lab/lab.json",
    "nft list table bridge v6agent",
    "ip netns exec v6lab-host nft list table bridge v6agent",
    "ip netns exec v6lab-g1 ip -6 addr show dev eth0",
  ].map((command): [string, Handling] => [
    command,
    {
      kind: "cannot-run",
      reason:
        "needs a lab up (minutes, libvirtd); test/e2e/lab.test.ts runs lab, --keep and lab down through the built CLI and checks what these show",
    },
  ]),
  ["v6agent addr 52:54:00:12:34:56 --prefix 2001:db8:1:1::/64", { kind: "run" }],
  ["v6agent guest-config --os systemd-networkd --mac 52:54:00:12:34:56 --nic ens3", { kind: "run" }],
  [
    "v6agent diag",
    {
      kind: "run",
      exitCodes: [0, 1, 2],
      check: (stdout) =>
        expect(stdout).toMatch(/^v6agent diag on \S+ at \S+\n\[(ok {2}|WARN|FAIL)\] kernel\.bridge: [\s\S]*\nworst: (ok|warn|fail)\n$/),
    },
  ],
  ["openssl rand -hex 32 > api-token", { kind: "run" }],
  ["v6agent mgmt --listen 127.0.0.1:8443 --api 127.0.0.1:8440 --api-token-file api-token --insecure-loopback", { kind: "daemon" }],
  [
    'curl -s -H "Authorization: Bearer $(cat api-token)" 127.0.0.1:8440/v1/agents',
    { kind: "tested-in", test: "test/integration/mgmt/http-api.test.ts" },
  ],
  // docs/operators.md: install from the package
  ["scripts/build-deb.sh --rpm", { kind: "tested-in", test: PACKAGES_TEST }],
  [
    "apt-get install ./v6agent_0.1.0_amd64.deb",
    { kind: "cannot-run", reason: `${INSTALLS_PACKAGE} with dpkg -i and with apt (the playbook)` },
  ],
  ["v6agent --version", { kind: "run" }],
  ["install -m 0600 /etc/v6agent/config.yaml.example /etc/v6agent/config.yaml", { kind: "tested-in", test: PACKAGES_TEST }],
  ["ansible-playbook -i inventory.ini packaging/ansible/v6agent.yml -e @vars.yml", { kind: "tested-in", test: PACKAGES_TEST }],
  // docs/operators.md: systemd
  ["systemctl enable --now v6agent", { kind: "cannot-run", reason: NO_SYSTEMD }],
  ["systemctl reload v6agent", { kind: "cannot-run", reason: NO_SYSTEMD }],
  ["journalctl -u v6agent -f", { kind: "cannot-run", reason: NO_SYSTEMD }],
  // docs/operators.md: TLS (run in order in the scratch directory)
  [
    'openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj "/CN=v6agent CA" -keyout ca.key -out ca.pem',
    { kind: "run" },
  ],
  [
    'openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=mgmt-1.example.net" -keyout server.key -out server.csr',
    { kind: "run" },
  ],
  ["printf 'subjectAltName=DNS:mgmt-1.example.net\\nextendedKeyUsage=serverAuth\\n' > server.ext", { kind: "run" }],
  [
    "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 -extfile server.ext -out server.pem",
    { kind: "run" },
  ],
  ['openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=host-17" -keyout agent.key -out agent.csr', { kind: "run" }],
  ["printf 'extendedKeyUsage=clientAuth\\n' > agent.ext", { kind: "run" }],
  ["openssl x509 -req -in agent.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 -extfile agent.ext -out agent.pem", { kind: "run" }],
  ["openssl verify -CAfile ca.pem server.pem agent.pem", { kind: "run" }],
  ["openssl x509 -in server.pem -noout -ext subjectAltName", { kind: "run" }],
  [
    "openssl rand -hex 32 > token",
    { kind: "run", check: () => expect(readFileSync(join(scratch, "token"), "utf8")).toMatch(/^[0-9a-f]{64}\n$/) },
  ],
  [
    "echo \"sha256:$(tr -d '\\n' < token | sha256sum | cut -d' ' -f1) host-17\" > host-tokens",
    {
      kind: "run",
      check: () => {
        const token = readFileSync(join(scratch, "token"), "utf8").trim();
        const hash = createHash("sha256").update(token).digest("hex");
        expect(readFileSync(join(scratch, "host-tokens"), "utf8")).toBe(`sha256:${hash} host-17\n`);
      },
    },
  ],
  ["install -m 0600 ca.pem agent.pem agent.key token /etc/v6agent/", { kind: "cannot-run", reason: WRITES_HOST }],
  [
    // also docs/protocol.md, run again there
    "v6agent mgmt --listen 127.0.0.1:8443 --api 127.0.0.1:8440 --api-token-file api-token --cert server.pem --key server.key --client-ca ca.pem --host-tokens host-tokens",
    { kind: "daemon" },
  ],
  // docs/operators.md: upgrades, remove, troubleshooting
  ["apt-get install ./v6agent_0.2.0_amd64.deb", { kind: "cannot-run", reason: `${INSTALLS_PACKAGE}, then a newer build of it over it` }],
  ["apt-get remove v6agent", { kind: "cannot-run", reason: `${INSTALLS_PACKAGE} and removes it with dpkg --purge` }],
  ["apt-get purge v6agent", { kind: "cannot-run", reason: `${INSTALLS_PACKAGE} and removes it with dpkg --purge` }],
  ["rm -r /etc/v6agent", { kind: "tested-in", test: PACKAGES_TEST }],
  ["v6agent diag --config /etc/v6agent/config.yaml", { kind: "tested-in", test: "test/integration/diag/diag-cli.test.ts" }],
  [
    "v6agent diag --json",
    {
      kind: "run",
      exitCodes: [0, 1, 2],
      check: (stdout) => {
        const report = JSON.parse(stdout) as { worst: string; checks: { name: string; status: string }[] };
        expect(report.checks.map((c) => c.name)).toEqual(
          expect.arrayContaining(["kernel.bridge", "kernel.nftables-bridge", "tool.nft", "tool.libnftables"]),
        );
        expect(["ok", "warn", "fail"]).toContain(report.worst);
      },
    },
  ],
  ["v6agent guest-config --help", { kind: "run" }],
]);

interface DocCommand {
  file: string;
  line: number;
  command: string;
  output: string[];
}

/** The `$ ` commands of every ```sh block, with the output shown under each. */
function docCommands(): DocCommand[] {
  const files = [
    "README.md",
    ...readdirSync(join(ROOT, "docs"))
      .filter((name) => name.endsWith(".md"))
      .sort()
      .map((name) => `docs/${name}`),
  ];
  const commands: DocCommand[] = [];
  for (const file of files) {
    const lines = readFileSync(join(ROOT, file), "utf8").split("\n");
    let inBlock = false;
    let current: DocCommand | undefined;
    for (let index = 0; index < lines.length; index++) {
      const line = lines[index] as string;
      if (!inBlock) {
        if (line.trim() === "```sh") inBlock = true;
        continue;
      }
      if (line.trim() === "```") {
        inBlock = false;
        current = undefined;
        continue;
      }
      if (line.startsWith("$ ")) {
        let command = line.slice(2);
        while (command.endsWith("\\")) command = `${command.slice(0, -1).trimEnd()} ${(lines[++index] as string).trim()}`;
        current = { file, line: index + 1, command, output: [] };
        commands.push(current);
      } else if (current === undefined) {
        if (line.trim() !== "")
          throw new Error(`${file}:${index + 1}: a line in a sh block that is neither a "$ " command nor its output: ${line}`);
      } else current.output.push(line);
    }
  }
  return commands;
}

/** Expected output against the real one: `...` alone matches any run of lines. */
function matchesOutput(expected: readonly string[], actual: readonly string[]): boolean {
  if (expected.length === 0) return actual.length === 0;
  const [first, ...rest] = expected;
  if (first === "...") {
    for (let skip = 0; skip <= actual.length; skip++) if (matchesOutput(rest, actual.slice(skip))) return true;
    return false;
  }
  return actual[0] === first && matchesOutput(rest, actual.slice(1));
}

function trimOutput(lines: readonly string[]): string[] {
  const copy = lines.map((line) => line.trimEnd());
  while (copy.length > 0 && copy[copy.length - 1] === "") copy.pop();
  return copy;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

let scratch = "";
let env: NodeJS.ProcessEnv = {};
const built = existsSync(CLI) ? undefined : "needs `npm run build` (dist/src/cli.js)";
if (built && process.env.CI) throw new Error(`CI must run every test, but this one ${built}`);
const skip = built ?? skipReason({ root: true, commands: ["bash", "openssl", "ip", "nft"] });

describe("commands shown in README.md and docs/*.md", () => {
  const commands = docCommands();

  it("are all listed here, and everything listed is still shown", () => {
    const shown = new Set(commands.map((c) => c.command));
    const unlisted = commands.filter((c) => !COMMANDS.has(c.command)).map((c) => `${c.file}:${c.line}: ${c.command}`);
    expect(unlisted).toEqual([]);
    expect([...COMMANDS.keys()].filter((command) => !shown.has(command))).toEqual([]);
    for (const [, handling] of COMMANDS) if (handling.kind === "tested-in") expect(existsSync(join(ROOT, handling.test))).toBe(true);
  });

  describe.skipIf(skip !== undefined)("run here", () => {
    const children: ChildProcess[] = [];
    beforeAll(() => {
      scratch = mkdtempSync(join(tmpdir(), "v6agent-docs-"));
      const bin = join(scratch, ".bin");
      mkdirSync(bin);
      writeFileSync(join(bin, "v6agent"), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
      chmodSync(join(bin, "v6agent"), 0o755);
      // No /etc/v6agent/config.yaml here: `v6agent diag` runs the host checks only.
      env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` };
    });
    afterAll(() => {
      for (const child of children) child.kill("SIGTERM");
      rmSync(scratch, { recursive: true, force: true });
    });

    // In document order: later commands use files earlier ones made (the TLS material).
    for (const doc of commands) {
      const handling = COMMANDS.get(doc.command);
      if (handling === undefined || (handling.kind !== "run" && handling.kind !== "daemon")) continue;
      it(`${doc.file}:${doc.line}: ${doc.command}`, async () => {
        if (handling.kind === "run") {
          const { stdout, exitCode } = await run("bash", ["-c", `cd "$1" && eval "$2"`, "bash", scratch, doc.command], {
            timeoutMs: 120_000,
            env,
            okExitCodes: handling.exitCodes ?? [0],
          });
          expect(handling.exitCodes ?? [0]).toContain(exitCode);
          const expected = trimOutput(doc.output);
          if (expected.length > 0) {
            const actual = trimOutput(stdout.split("\n"));
            expect(matchesOutput(expected, actual), `shown:\n${expected.join("\n")}\nreal:\n${actual.join("\n")}`).toBe(true);
          }
          handling.check?.(stdout);
          return;
        }
        // A daemon: the doc's ports become free ones (other tests may hold 8443/8440).
        const ports = new Map([
          ["8443", String(await freePort())],
          ["8440", String(await freePort())],
        ]);
        const swap = (text: string) => text.replace(/:(8443|8440)\b/g, (_match, port: string) => `:${ports.get(port)}`);
        const child = spawn("bash", ["-c", `exec ${swap(doc.command)}`], { cwd: scratch, env, stdio: ["ignore", "pipe", "pipe"] });
        children.push(child);
        const firstLine = await new Promise<string>((resolve, reject) => {
          let buffer = "";
          let errors = "";
          child.stdout?.on("data", (chunk: Buffer) => {
            buffer += chunk.toString();
            if (buffer.includes("\n")) resolve(buffer.slice(0, buffer.indexOf("\n")));
          });
          child.stderr?.on("data", (chunk: Buffer) => {
            errors += chunk.toString();
          });
          child.once("exit", (code) => reject(new Error(`exited with ${code} before printing: ${errors}`)));
        });
        child.kill("SIGTERM");
        const expected = trimOutput(doc.output).map(swap);
        expect(expected.length, "a daemon's first line must be shown").toBeGreaterThan(0);
        expect(firstLine).toBe(expected[0]);
      });
    }
  });
});

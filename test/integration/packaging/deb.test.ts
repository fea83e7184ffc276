import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CommandError, run } from "../../../src/exec.js";
import { skipReason } from "../../support/requirements.js";
import { difference, hostFiles } from "./host-files.js";

/**
 * The packages as an operator gets them: scripts/build-deb.sh builds the .deb and the .rpm once
 * (into a scratch directory), and this file follows the .deb through its life on this host —
 * its contents, lintian, `dpkg -i`, the agent run from the installed files, an upgrade, purge
 * — then a rollout with packaging/ansible/v6agent.yml, then checks the .rpm. One file, because
 * every step needs the one build and installing is exclusive on a host.
 */

const ROOT = new URL("../../../", import.meta.url).pathname;
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
const ADDONS = ["v6agent_libvirt", "v6agent_nftables", "v6agent_nflog"] as const;
const APP = "/usr/lib/v6agent";
const BUNDLED_NODE = `${APP}/node/bin/node`;

const reason = skipReason({
  root: true,
  commands: [
    "dpkg",
    "dpkg-deb",
    "dpkg-shlibdeps",
    "lintian",
    "rpmbuild",
    "rpm2cpio",
    "cpio",
    "ansible-playbook",
    "systemd-analyze",
    "openssl",
  ],
  files: [
    { path: join(ROOT, "dist/src/cli.js"), from: "npm run build" },
    ...ADDONS.map((addon) => ({ path: join(ROOT, `native/build/Release/${addon}.node`), from: "npm run build" })),
  ],
});

/** Paths of a test file of ours or of a dependency. */
const TEST_FILE = /\/dist\/test\/|\/(test|tests|__tests__|coverage)\/|\.(test|spec)\.|\/test\.js$|\.map$|\.d\.[cm]?ts$/;

let out: string;
let deb: string;
let rpm: string;

/** A dpkg-query --showformat field, e.g. ${Status}. */
const field = (name: string) => `\${${name}}`;

async function installed(): Promise<boolean> {
  const { stdout } = await run("dpkg-query", ["-W", "-f", field("Status"), "v6agent"], { okExitCodes: [0, 1] });
  return stdout.includes("installed") && !stdout.includes("not-installed");
}

async function purge(): Promise<void> {
  await run("dpkg", ["--purge", "v6agent"], { timeoutMs: 120_000 });
}

const SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Runs the installed /usr/bin/v6agent with systemd's default PATH, or with `path`. */
async function v6agent(args: string[], okExitCodes = [0], path = SYSTEMD_PATH, timeoutMs = 60_000) {
  return run("/usr/bin/v6agent", args, { okExitCodes, env: { PATH: path }, timeoutMs });
}

describe.skipIf(reason)("the v6agent packages", () => {
  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), "v6agent-packages-"));
    // --no-build: dist/ is built (scripts/test.sh does it first) and other tests run from it now.
    const started = Date.now();
    await run("bash", [join(ROOT, "scripts/build-deb.sh"), "--no-build", "--rpm", "--out", out], { timeoutMs: 600_000 });
    console.log(`scripts/build-deb.sh --rpm took ${((Date.now() - started) / 1000).toFixed(0)} s`);
    deb = join(out, `v6agent_${VERSION}_amd64.deb`);
    rpm = join(out, `v6agent-${VERSION}-1.x86_64.rpm`);
  }, 600_000);

  afterAll(() => {
    if (out) rmSync(out, { recursive: true, force: true });
  });

  describe("the .deb's contents", () => {
    /** `dpkg-deb -c`: path (without the leading ".") to its mode string. */
    let files: Map<string, string>;
    beforeAll(async () => {
      const { stdout } = await run("dpkg-deb", ["-c", deb]);
      files = new Map();
      for (const line of stdout.trim().split("\n")) {
        const [mode, owner, , , , path] = line.split(/\s+/);
        expect(owner).toBe("root/root");
        files.set((path as string).replace(/^\./, "").replace(/(.)\/$/, "$1"), mode as string);
      }
      const size = statSync(deb).size;
      console.log(`.deb: ${(size / 2 ** 20).toFixed(1)} MiB, ${[...files.values()].filter((m) => !m.startsWith("d")).length} files`);
    });

    it("holds the launcher, the bundled runtime, the prebuilt addons, the unit, the example config, the state directory and the docs", () => {
      expect(files.get("/usr/bin/v6agent")).toBe("-rwxr-xr-x");
      expect(files.get(BUNDLED_NODE)).toBe("-rwxr-xr-x");
      for (const addon of ADDONS) expect(files.get(`${APP}/native/build/Release/${addon}.node`)).toBe("-rw-r--r--");
      expect(files.get(`${APP}/dist/src/cli.js`)).toBe("-rw-r--r--");
      expect(files.get(`${APP}/package.json`)).toBe("-rw-r--r--");
      expect(files.get("/lib/systemd/system/v6agent.service")).toBe("-rw-r--r--");
      expect(files.get("/etc/v6agent/config.yaml.example")).toBe("-rw-r--r--");
      expect(files.get("/etc/v6agent")).toBe("drwx------");
      expect(files.get("/var/lib/v6agent")).toBe("drwx------");
      for (const doc of ["README.md", "operators.md", "security.md", "protocol.md", "copyright", "changelog.gz", "node.LICENSE"]) {
        expect(files.has(`/usr/share/doc/v6agent/${doc}`), doc).toBe(true);
      }
      expect(files.has("/usr/share/man/man1/v6agent.1.gz")).toBe(true);
      // Under /usr/lib/v6agent: the application and its runtime, nothing else.
      const top = new Set([...files.keys()].filter((path) => path.startsWith(`${APP}/`)).map((path) => path.split("/")[4]));
      expect([...top].sort()).toEqual(["dist", "native", "node", "node_modules", "package.json"]);
    });

    it("ships every JavaScript and JSON file of dist/src and no test, of ours or of the dependencies", () => {
      expect([...files.keys()].filter((path) => TEST_FILE.test(path))).toEqual([]);
      const built = (readdirSync(join(ROOT, "dist/src"), { recursive: true }) as string[])
        .filter((path) => /\.(js|json)$/.test(path))
        .map((path) => `${APP}/dist/src/${path}`)
        .sort();
      const shipped = [...files.keys()].filter((path) => path.startsWith(`${APP}/dist/`) && !files.get(path)?.startsWith("d")).sort();
      expect(shipped).toEqual(built);
    });

    it("is what npm pack ships, plus the dependencies and the runtime: package.json's files hold no test", async () => {
      const [packed] = JSON.parse((await run("npm", ["pack", "--dry-run", "--json", "--silent", ROOT])).stdout) as [
        { files: { path: string }[] },
      ];
      const paths = packed.files.map((file) => file.path);
      expect(paths.filter((path) => TEST_FILE.test(`/${path}`))).toEqual([]);
      const application = paths.filter((path) => path.startsWith("dist/") || path.startsWith("native/") || path === "package.json");
      for (const path of application) expect(files.has(`${APP}/${path}`), path).toBe(true);
    });

    it("has exactly the production dependencies package-lock.json lists", () => {
      const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
        packages: Record<string, { dev?: boolean }>;
      };
      const production = Object.entries(lock.packages)
        .filter(([path, entry]) => path.startsWith("node_modules/") && entry.dev !== true)
        .map(([path]) => path)
        .sort();
      const shipped = [...files.keys()]
        .filter((path) => path.startsWith(`${APP}/node_modules/`) && path.endsWith("/package.json"))
        .map((path) => path.slice(`${APP}/`.length, -"/package.json".length))
        // A package's root, not a package.json inside one (e.g. dist/esm/package.json).
        .filter((path) => /^node_modules\/(@[^/]+\/)?[^/]+(\/node_modules\/(@[^/]+\/)?[^/]+)*$/.test(path))
        .sort();
      expect(shipped).toEqual(production);
      expect(production).not.toContain("node_modules/vitest");
    });

    it("depends on the libraries its ELF files link (as dpkg-shlibdeps found them) and the tools it runs, nothing to build with", async () => {
      const depends = (await run("dpkg-deb", ["-f", deb, "Depends"])).stdout.trim();
      const names = depends.split(/,\s*/).map((dependency) => dependency.split(/[\s(]/)[0]);
      expect(names).toEqual(expect.arrayContaining(["libvirt0", "libnftables1", "nftables", "ebtables", "iptables", "iproute2", "procps"]));
      expect(names.filter((name) => /-dev$|^nodejs$|^npm$|^gcc|^g\+\+|^make$/.test(name as string))).toEqual([]);
      // Independently of dpkg-shlibdeps: each library the addons and node link is from a package Depends names.
      const tree = join(out, "work/debian/v6agent");
      for (const elf of [`${tree}${BUNDLED_NODE}`, ...ADDONS.map((addon) => `${tree}${APP}/native/build/Release/${addon}.node`)]) {
        const needed = [...(await run("objdump", ["-p", elf])).stdout.matchAll(/^\s+NEEDED\s+(\S+)$/gm)].map((match) => match[1] as string);
        const cache = (await run("ldconfig", ["-p"])).stdout;
        for (const soname of needed) {
          const path = new RegExp(`^\\s+${soname.replace(/[.+]/g, "\\$&")} \\(libc6,x86-64\\) => (\\S+)$`, "m").exec(cache)?.[1];
          expect(path, `${soname} of ${elf}`).toBeDefined();
          // dpkg knows a library by the path its package ships, /lib/... or /usr/lib/... (the
          // one being a link to the other); it answers "package:arch: path".
          const real = join(realpathSync(dirname(path as string)), basename(path as string));
          const owners = await run("dpkg", ["-S", path as string, real], { okExitCodes: [0, 1] });
          const owner = owners.stdout.split(":")[0];
          expect(names, `${soname} (${owner}) of ${elf}`).toContain(owner);
        }
      }
    });

    it("is lintian clean: no error or warning but those packaging/deb/lintian-overrides justifies, and no override unused", async () => {
      const started = Date.now();
      // Every override matches a hint, or lintian reports it unused. (--show-overrides would list
      // them, but also make them count for --fail-on.)
      const { stdout, exitCode } = await run("lintian", ["--fail-on", "error,warning", "-I", deb], {
        okExitCodes: [0, 1, 2],
        timeoutMs: 300_000,
      });
      console.log(`lintian took ${((Date.now() - started) / 1000).toFixed(0)} s`);
      expect(stdout.split("\n").filter((line) => /^[EW]: /.test(line))).toEqual([]);
      expect(stdout.split("\n").filter((line) => /unused-override|mismatched-override/.test(line))).toEqual([]);
      expect(exitCode).toBe(0);
    });
  });

  describe("installed with dpkg -i, upgraded, purged", () => {
    let before: Set<string>;
    beforeAll(async () => {
      if (await installed()) {
        console.warn("v6agent was installed on this host (an earlier run killed half-way?): purging it first");
        await purge();
      }
      before = await hostFiles();
    });
    afterAll(async () => {
      if (await installed()) await purge();
      rmSync("/etc/v6agent", { recursive: true, force: true });
    });

    it("installs with dpkg -i (its dependencies being there)", async () => {
      await run("dpkg", ["-i", deb], { timeoutMs: 300_000 });
      expect(await installed()).toBe(true);
      // Neither enabled nor started: there is no configuration yet.
      expect(existsSync("/etc/systemd/system/multi-user.target.wants/v6agent.service")).toBe(false);
    });

    it("runs v6agent --version from the installed files, on the bundled Node.js (>= 22), not the host's", async () => {
      // With no PATH at all: the launcher needs neither the host's node nor anything found on PATH.
      expect((await v6agent(["--version"], [0], "/nonexistent")).stdout).toBe(`${VERSION}\n`);
      const runtime = (await run(BUNDLED_NODE, ["-p", "process.versions.node"])).stdout.trim();
      expect(Number(runtime.split(".")[0])).toBeGreaterThanOrEqual(22);
      console.log(`bundled Node.js ${runtime}; these tests run on Node.js ${process.versions.node}`);
    });

    it("loads both addons, built once on the development Node.js, in the bundled one (Node-API)", async () => {
      const script = `
        const dir = ${JSON.stringify(`${APP}/native/build/Release`)};
        const libvirt = require(dir + "/v6agent_libvirt.node");
        const nft = require(dir + "/v6agent_nftables.node");
        nft.generation({}).then((generation) => {
          console.log(JSON.stringify({ napi: process.versions.napi, libvirt: libvirt.libraryVersion(), nft: Object.keys(nft).sort(), generation }));
          return nft.release();
        });`;
      const loaded = JSON.parse((await run(BUNDLED_NODE, ["-e", script])).stdout) as {
        napi: string;
        libvirt: number;
        nft: string[];
        generation: number;
      };
      // libvirt's version as the library reports it (major * 1,000,000 + minor * 1,000 + release).
      expect(loaded.libvirt).toBeGreaterThan(1_000_000);
      // The calls src/firewall/nft/libnftables.ts makes, and one made for real (a netlink round trip).
      expect(loaded.nft).toEqual(expect.arrayContaining(["generation", "release", "run"]));
      expect(Number.isInteger(loaded.generation)).toBe(true);
      expect(Number(loaded.napi)).toBeGreaterThanOrEqual(8);
    });

    it("imports every module of dist/src with the installed node_modules", async () => {
      // Process entry points run when imported: the CLI, the lab's XAPI simulator process, and
      // the checks generator (a build tool; the lab test above runs the other two).
      const entryPoints = new Set(["cli.js", "lab/xapi-sim/lab-main.js", "protocol/write-checks.js"]);
      const script = `
        import { readdirSync } from "node:fs";
        const root = ${JSON.stringify(`${APP}/dist/src`)};
        const skip = new Set(${JSON.stringify([...entryPoints])});
        const modules = readdirSync(root, { recursive: true }).filter((f) => f.endsWith(".js") && !skip.has(f));
        for (const module of modules) await import(root + "/" + module);
        console.log(modules.length);`;
      const { stdout } = await run(BUNDLED_NODE, ["--input-type=module", "-e", script], { timeoutMs: 60_000 });
      expect(Number(stdout.trim())).toBeGreaterThan(100);
    });

    it("v6agent diag --json reports on this host from the installed files, libnftables working in-process", async () => {
      // No /etc/v6agent/config.yaml: the host checks only; a failing check is a non-zero exit.
      const { stdout } = await v6agent(["diag", "--json"], [0, 1, 2]);
      const report = JSON.parse(stdout) as { worst: string; checks: { name: string; status: string }[] };
      expect(["ok", "warn", "fail"]).toContain(report.worst);
      expect(report.checks.find((check) => check.name === "tool.libnftables")?.status).toBe("ok");
      expect(report.checks.map((check) => check.name)).toEqual(expect.arrayContaining(["kernel.bridge", "tool.nft", "tool.ip6tables"]));
    });

    it("plays the lab from the installed files: the daemon, the management server and the XAPI simulator on the bundled runtime", async () => {
      // The XenServer mode with namespace guests: seconds, no VMs (docs/lab.md). Its names are the
      // lab's own (v6lab-*); the e2e tier's lab test runs after this tier, never beside it.
      try {
        const { stdout } = await v6agent(["lab", "--hypervisor", "xenserver", "--guest-kind", "netns", "--json"], [0], undefined, 300_000);
        const result = JSON.parse(stdout) as { ok: boolean; addressesOk: boolean; attacksDropped: boolean; hypervisor: string };
        expect(result).toMatchObject({ ok: true, addressesOk: true, attacksDropped: true, hypervisor: "xenserver" });
      } finally {
        await v6agent(["lab", "down"], [0, 1]);
      }
    });

    it("installs a unit that systemd-analyze verify accepts as installed, its Documentation= all present", async () => {
      const unit = "/lib/systemd/system/v6agent.service";
      const { stdout, stderr } = await run("systemd-analyze", ["verify", "--man=yes", unit], { okExitCodes: [0, 1] });
      expect(`${stdout}${stderr}`.trim()).toBe("");
      const documentation = /^Documentation=(.*)$/m.exec(readFileSync(unit, "utf8"))?.[1]?.split(/\s+/) ?? [];
      expect(documentation.length).toBeGreaterThan(0);
      for (const url of documentation) {
        const path = url.startsWith("file://")
          ? url.slice("file://".length)
          : `/usr/share/man/man1/${/^man:(.+)\(1\)$/.exec(url)?.[1]}.1.gz`;
        expect(existsSync(path), url).toBe(true);
      }
    });

    it("upgrades to a newer package keeping the configuration and the agent's state", async () => {
      await run("install", ["-m", "0600", "/etc/v6agent/config.yaml.example", "/etc/v6agent/config.yaml"]);
      writeFileSync("/var/lib/v6agent/desired-state.json", '{"schemaVersion":3}\n', { mode: 0o600 });
      // The same package as the next version: unpacked, its version raised, packed again.
      const tree = join(out, "next");
      await run("dpkg-deb", ["-R", deb, tree]);
      const control = join(tree, "DEBIAN/control");
      writeFileSync(control, readFileSync(control, "utf8").replace(/^Version: .*$/m, `Version: ${VERSION}+next`));
      const next = join(out, "next.deb");
      await run("dpkg-deb", ["--root-owner-group", "-Znone", "-b", tree, next], { timeoutMs: 120_000 });
      rmSync(tree, { recursive: true });
      await run("dpkg", ["-i", next], { timeoutMs: 300_000 });
      expect((await run("dpkg-query", ["-W", "-f", field("Version"), "v6agent"])).stdout).toBe(`${VERSION}+next`);
      expect(readFileSync("/var/lib/v6agent/desired-state.json", "utf8")).toBe('{"schemaVersion":3}\n');
      expect(readFileSync("/etc/v6agent/config.yaml", "utf8")).toBe(readFileSync(join(ROOT, "packaging/config.example.yaml"), "utf8"));
      expect((await v6agent(["--version"])).stdout).toBe(`${VERSION}\n`);
    });

    it("purges leaving nothing behind but the operator's own file in /etc/v6agent", async () => {
      await purge();
      expect(await installed()).toBe(false);
      await expect(run("dpkg-query", ["-W", "v6agent"])).rejects.toThrow(CommandError);
      expect(difference(before, await hostFiles())).toEqual({ added: ["/etc/v6agent", "/etc/v6agent/config.yaml"], removed: [] });
      rmSync("/etc/v6agent", { recursive: true });
      expect(difference(before, await hostFiles())).toEqual({ added: [], removed: [] });
    });
  });

  describe("rolled out with packaging/ansible/v6agent.yml (ansible-playbook -c local)", () => {
    const systemdRuns = readFileSync("/proc/1/comm", "utf8").trim() === "systemd";
    let before: Set<string>;
    let vars: string;
    const cachedDeb = () => `/var/cache/apt/archives/v6agent_${VERSION}_amd64.deb`;

    async function playbook(extra: string[] = []): Promise<string> {
      const { stdout } = await run(
        "ansible-playbook",
        [
          "-i",
          "localhost,",
          "-c",
          "local",
          "-e",
          "v6agent_hosts=localhost",
          "-e",
          `@${vars}`,
          ...extra,
          join(ROOT, "packaging/ansible/v6agent.yml"),
        ],
        { timeoutMs: 300_000, env: { ...process.env, ANSIBLE_NOCOLOR: "1", ANSIBLE_LOCALHOST_WARNING: "false" } },
      );
      return stdout;
    }

    beforeAll(async () => {
      if (await installed()) await purge();
      before = await hostFiles();
      vars = join(out, "vars.json");
      const ca = join(out, "ca.pem");
      await run(
        "openssl",
        ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"].concat([
          "-subj",
          "/CN=v6agent test CA",
          "-keyout",
          join(out, "ca.key"),
          "-out",
          ca,
        ]),
      );
      writeFileSync(
        vars,
        JSON.stringify({
          v6agent_deb: deb,
          v6agent_config: {
            management: { servers: ["wss://[::1]:9/v6agent"], caFile: "/etc/v6agent/ca.pem", tokenFile: "/etc/v6agent/token" },
            hypervisor: { kind: "kvm" },
            firewall: { backend: "nft" },
          },
          v6agent_token: "0123456789abcdef0123456789abcdef",
          v6agent_ca_pem: readFileSync(ca, "utf8"),
        }),
      );
    });
    afterAll(async () => {
      if (await installed()) await purge();
      rmSync("/etc/v6agent", { recursive: true, force: true });
      rmSync(cachedDeb(), { force: true });
    });

    it("installs the package and writes the configuration and credentials root-only", async () => {
      // Everything but the start step: PID 1 here is not systemd (see the skipped test below).
      const recap = await playbook(["--skip-tags", "start"]);
      expect(recap).toMatch(/localhost\s+: ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=0/);
      expect(await installed()).toBe(true);
      const mode = (path: string) => (statSync(path).mode & 0o7777).toString(8);
      expect(mode("/etc/v6agent")).toBe("700");
      for (const file of ["config.yaml", "token", "ca.pem"]) {
        expect(mode(`/etc/v6agent/${file}`), file).toBe("600");
        expect(statSync(`/etc/v6agent/${file}`).uid).toBe(0);
      }
      expect(readFileSync("/etc/v6agent/token", "utf8")).toBe("0123456789abcdef0123456789abcdef");
    });

    it("changes nothing when run again", async () => {
      expect(await playbook(["--skip-tags", "start"])).toMatch(/localhost\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0/);
    });

    it("writes a configuration the installed agent accepts", async () => {
      // diag loads it as the daemon does (an invalid one is a message, not a JSON report), then
      // checks the management server named in it.
      const { stdout } = await v6agent(["diag", "--config", "/etc/v6agent/config.yaml", "--json"], [0, 1, 2]);
      const report = JSON.parse(stdout) as { checks: { name: string; status: string }[] };
      expect(report.checks.find((check) => check.name === "mgmt.tcp.[::1]:9")?.status).toBe("fail");
    });

    it.skipIf(!systemdRuns)(
      "enables and starts v6agent.service (tag start) — skipped unless PID 1 is systemd: on this machine it is not, so systemctl has no manager to talk to",
      async () => {
        await playbook();
        expect((await run("systemctl", ["is-enabled", "v6agent.service"])).stdout.trim()).toBe("enabled");
        const { stdout } = await run("systemctl", ["show", "-p", "ActiveState", "v6agent.service"]);
        expect(stdout.trim()).not.toBe("ActiveState=inactive");
      },
    );

    it("is undone by dpkg --purge but for the files it wrote for the operator", async () => {
      await purge();
      const left = difference(before, await hostFiles());
      expect(left).toEqual({
        added: ["/etc/v6agent", "/etc/v6agent/ca.pem", "/etc/v6agent/config.yaml", "/etc/v6agent/token", cachedDeb()].sort(),
        removed: [],
      });
      rmSync("/etc/v6agent", { recursive: true });
      rmSync(cachedDeb());
      expect(difference(before, await hostFiles())).toEqual({ added: [], removed: [] });
    });
  });

  describe("the .rpm (RHEL-family KVM hosts)", () => {
    let listing: Map<string, string>;
    beforeAll(async () => {
      // rpm -qlvp: an ls -l line per file; the path is the ninth field.
      const { stdout } = await run("rpm", ["-qlvp", rpm]);
      listing = new Map(
        stdout
          .trim()
          .split("\n")
          .map((line) => {
            const fields = line.split(/\s+/);
            return [
              fields
                .slice(8)
                .join(" ")
                .replace(/ -> .*$/, ""),
              fields[0] as string,
            ];
          }),
      );
      console.log(
        `.rpm: ${(statSync(rpm).size / 2 ** 20).toFixed(1)} MiB, ${[...listing.values()].filter((m) => !m.startsWith("d")).length} files`,
      );
    });

    it("holds the same files as the .deb, with RHEL's unit directory and without Debian's changelog and lintian overrides", async () => {
      const debFiles = (await run("dpkg-deb", ["-c", deb])).stdout
        .trim()
        .split("\n")
        .map((line) => (line.split(/\s+/)[5] as string).replace(/^\./, "").replace(/(.)\/$/, "$1"))
        .filter((path) => path.startsWith(APP) || path.startsWith("/usr/share/doc/v6agent/") || path === "/usr/bin/v6agent")
        .filter((path) => !path.endsWith("changelog.gz"));
      const rpmFiles = [...listing.keys()].filter(
        (path) => path.startsWith(APP) || path.startsWith("/usr/share/doc/v6agent/") || path === "/usr/bin/v6agent",
      );
      expect(rpmFiles.sort()).toEqual(debFiles.sort());
      expect(listing.get("/usr/lib/systemd/system/v6agent.service")).toBe("-rw-r--r--");
      expect(listing.get("/usr/bin/v6agent")).toBe("-rwxr-xr-x");
      expect(listing.get(BUNDLED_NODE)).toBe("-rwxr-xr-x");
      expect(listing.get("/etc/v6agent")).toBe("drwx------");
      expect(listing.get("/var/lib/v6agent")).toBe("drwx------");
      expect(listing.has("/etc/v6agent/config.yaml.example")).toBe(true);
      expect([...listing.keys()].filter((path) => TEST_FILE.test(path) || path.includes("lintian"))).toEqual([]);
    });

    it("requires libvirt, libnftables and the tools, found from its ELF files, and no system Node.js", async () => {
      const requires = (await run("rpm", ["-qp", "--requires", rpm])).stdout.trim().split("\n");
      expect(requires).toEqual(
        expect.arrayContaining(["libvirt.so.0()(64bit)", "libnftables.so.1()(64bit)", "nftables", "iptables-nft", "iproute", "procps-ng"]),
      );
      expect(requires.filter((requirement) => /node|\/usr\/bin\/env/.test(requirement))).toEqual([]);
      expect((await run("rpm", ["-qp", "--configfiles", rpm])).stdout).toContain("/etc/v6agent/config.yaml.example");
    });

    it("runs v6agent --version from its payload", async () => {
      const root = join(out, "rpm-root");
      await run("mkdir", ["-p", root]);
      await run("bash", ["-c", 'rpm2cpio "$1" | cpio -idm --quiet -D "$2"', "unpack", rpm, root], { timeoutMs: 120_000 });
      const { stdout } = await run(join(root, BUNDLED_NODE), [join(root, APP, "dist/src/cli.js"), "--version"]);
      expect(stdout).toBe(`${VERSION}\n`);
    });
  });
});

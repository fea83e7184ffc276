import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { AgentChannel, checkServerUrl } from "../../../src/channel/index.js";
import { channelSecurity } from "../../../src/daemon/channel-security.js";
import { ConfigError, loadAgentConfig, parseAgentConfig, parseAgentConfigText } from "../../../src/daemon/config.js";
import { configReferenceMarkdown } from "../../../src/daemon/config-reference.js";
import { makeTlsMaterial, type TlsMaterial } from "../../support/tls-material.js";

const environment = { machineId: "0123456789abcdef0123456789abcdef", hostname: "kvm-host-7" };
const minimal = {
  management: { servers: ["wss://mgmt.example:8443/agent"], caFile: "/etc/v6agent/ca.pem", tokenFile: "/etc/v6agent/token" },
};

/** The config `minimal` with `patch` merged in at `section` (or the root). */
function withField(section: string | undefined, patch: Record<string, unknown>): Record<string, unknown> {
  if (section === undefined) return { ...minimal, ...patch };
  const base = (minimal as Record<string, Record<string, unknown>>)[section] ?? {};
  return { ...minimal, [section]: { ...base, ...patch } };
}

/** The ConfigError parsing `raw` throws. */
function refusal(raw: unknown): ConfigError {
  let caught: unknown;
  try {
    parseAgentConfig(raw, environment);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  return caught as ConfigError;
}

/** Expects parse to fail with exactly one problem, naming `field`, its message matching `message`. */
function expectRefused(raw: unknown, field: string, message: RegExp) {
  const error = refusal(raw);
  expect(error.problems.map((problem) => problem.field)).toEqual([field]);
  expect(error.field).toBe(field);
  expect(error.message).toMatch(message);
  expect(error.message.startsWith(`${field}: `)).toBe(true);
}

describe("parseAgentConfig: defaults", () => {
  it("fills every documented default from a minimal file", () => {
    expect(parseAgentConfig(minimal, environment)).toEqual({
      hostId: "0123456789abcdef0123456789abcdef",
      management: {
        servers: ["wss://mgmt.example:8443/agent"],
        caFile: "/etc/v6agent/ca.pem",
        tokenFile: "/etc/v6agent/token",
        insecure: false,
        heartbeatSeconds: 15,
        timeoutSeconds: 45,
      },
      hypervisor: { kind: "kvm", uri: "qemu:///system", domainType: "kvm" },
      network: {},
      firewall: { backend: "auto" },
      stateDir: "/var/lib/v6agent",
      logLevel: "info",
      metrics: {},
      statusSocket: "/run/v6agent/status.sock",
      reconcileSeconds: 60,
    });
  });

  it("takes hostId from the hostname when there is no usable machine-id", () => {
    expect(parseAgentConfig(minimal, { hostname: "kvm-host-7" }).hostId).toBe("kvm-host-7");
    expect(parseAgentConfig(minimal, { machineId: "uninitialized", hostname: "kvm-host-7" }).hostId).toBe("kvm-host-7");
  });

  it("accepts a full XenServer configuration", () => {
    const config = parseAgentConfig(
      {
        ...minimal,
        hostId: "xs-1",
        hypervisor: { kind: "xenserver", xapi: { url: "https://127.0.0.1", passwordFile: "/etc/v6agent/xapi", allowSelfSigned: true } },
        network: { uplink: "xenbr0", mtu: 1500 },
        firewall: { backend: "xtables" },
        metrics: { listen: "[::1]:9464" },
        netns: "v6lab-host1",
        logLevel: "debug",
      },
      environment,
    );
    expect(config.hypervisor).toEqual({
      kind: "xenserver",
      xapi: { url: "https://127.0.0.1/", username: "root", passwordFile: "/etc/v6agent/xapi", allowSelfSigned: true },
    });
    expect(config.metrics).toEqual({ listen: { host: "::1", port: 9464 } });
    expect(config.netns).toBe("v6lab-host1");
  });

  it("accepts ws:// to loopback without insecure, and anywhere with it", () => {
    expect(
      parseAgentConfig(withField("management", { servers: ["ws://127.0.0.1:9000", "ws://[::1]:9000", "ws://localhost/x"] }), environment)
        .management.servers,
    ).toHaveLength(3);
    expect(
      parseAgentConfig(withField("management", { servers: ["ws://192.0.2.10:9000"], insecure: true }), environment).management.servers,
    ).toEqual(["ws://192.0.2.10:9000/"]);
  });
});

describe("parseAgentConfig: every error names its field", () => {
  it("unknown fields, with a hint for a near miss", () => {
    expectRefused({ ...minimal, statedir: "/x" }, "statedir", /unknown field \(did you mean stateDir\?\)/);
    expectRefused(withField("management", { heartbeat_seconds: 5 }), "management.heartbeat_seconds", /did you mean heartbeatSeconds/);
    expectRefused(
      { ...minimal, hypervisor: { kind: "xenserver", xapi: { url: "https://x", passwordFile: "/p", pasword: "x" } } },
      "hypervisor.xapi.pasword",
      /unknown field/,
    );
  });

  it("a section that is not a mapping", () => {
    expectRefused("just a string", "(config)", /expected a mapping, got string/);
    expectRefused({ ...minimal, network: ["eth0"] }, "network", /expected a mapping, got a list/);
  });

  it("management servers: missing, empty, wrong scheme, plain text, credentials", () => {
    expectRefused({}, "management", /required/);
    expectRefused({ management: { servers: [], tokenFile: "/t" } }, "management.servers", /non-empty list/);
    expectRefused(
      withField("management", { servers: ["wss://a.example", "https://b.example"] }),
      "management.servers[1]",
      /expected wss:\/\/ \(or ws:\/\/\), got https:/,
    );
    expectRefused(
      withField("management", { servers: ["ws://192.0.2.10:9000"] }),
      "management.servers[0]",
      /plain text; use wss:\/\/, or set management.insecure: true/,
    );
    expectRefused(
      withField("management", { servers: ["wss://agent:secret@a.example"] }),
      "management.servers[0]",
      /credentials in the URL/,
    );
    expectRefused(withField("management", { servers: ["not a url"] }), "management.servers[0]", /is not a URL/);
    expectRefused(withField("management", { servers: [42] }), "management.servers[0]", /got number/);
  });

  it("management credentials", () => {
    expectRefused({ management: { servers: ["wss://a.example"], caFile: "/ca.pem" } }, "management", /no credentials/);
    expectRefused(withField("management", { token: "abc" }), "management.token", /either token or tokenFile/);
    expectRefused(withField("management", { certFile: "/etc/v6agent/agent.pem" }), "management.keyFile", /go together/);
    expectRefused(withField("management", { caFile: "ca.pem" }), "management.caFile", /absolute path/);
  });

  it("numbers: range, type and the heartbeat/timeout relation", () => {
    expectRefused(withField("management", { heartbeatSeconds: 0 }), "management.heartbeatSeconds", /integer from 1 to 3600, got 0/);
    expectRefused(withField("management", { heartbeatSeconds: "15" }), "management.heartbeatSeconds", /got "15"/);
    expectRefused(
      withField("management", { heartbeatSeconds: 20, timeoutSeconds: 20 }),
      "management.timeoutSeconds",
      /greater than management.heartbeatSeconds \(20\)/,
    );
    expectRefused({ ...minimal, network: { mtu: 1000 } }, "network.mtu", /1280 to 65535/);
  });

  it("booleans are booleans, not 'yes'", () => {
    expectRefused(withField("management", { insecure: "yes" }), "management.insecure", /expected true or false, got "yes"/);
  });

  it("enumerations", () => {
    expectRefused({ ...minimal, hypervisor: { kind: "vmware" } }, "hypervisor.kind", /one of kvm, xenserver/);
    expectRefused({ ...minimal, firewall: { backend: "iptables" } }, "firewall.backend", /one of auto, nft, xtables/);
    expectRefused({ ...minimal, logLevel: "verbose" }, "logLevel", /one of fatal, error, warn, info, debug, trace/);
    expectRefused({ ...minimal, hypervisor: { domainType: "xen" } }, "hypervisor.domainType", /one of kvm, qemu/);
    expectRefused({ ...minimal, reconcileSeconds: 0 }, "reconcileSeconds", /1/);
    expect(parseAgentConfig({ ...minimal, hypervisor: { domainType: "qemu" }, reconcileSeconds: 2 }, environment)).toMatchObject({
      hypervisor: { domainType: "qemu" },
      reconcileSeconds: 2,
    });
  });

  it("hypervisor sections that do not belong to the kind", () => {
    expectRefused({ ...minimal, hypervisor: { kind: "kvm", xapi: {} } }, "hypervisor.xapi", /only for hypervisor.kind: xenserver/);
    expectRefused(
      { ...minimal, hypervisor: { kind: "xenserver", uri: "qemu:///system", xapi: { url: "https://x", passwordFile: "/p" } } },
      "hypervisor.uri",
      /only for hypervisor.kind: kvm/,
    );
    expectRefused({ ...minimal, hypervisor: { kind: "xenserver" } }, "hypervisor.xapi", /required/);
    expectRefused(
      { ...minimal, hypervisor: { kind: "xenserver", xapi: { url: "https://x" } } },
      "hypervisor.xapi.passwordFile",
      /required/,
    );
    expectRefused(
      { ...minimal, hypervisor: { kind: "xenserver", xapi: { url: "ftp://x", passwordFile: "/p" } } },
      "hypervisor.xapi.url",
      /https:\/\//,
    );
    expectRefused({ ...minimal, hypervisor: { uri: "qemu system" } }, "hypervisor.uri", /not a libvirt URI/);
  });

  it("names: uplink, netns, hostId, metrics address", () => {
    expectRefused({ ...minimal, network: { uplink: "eth0; reboot" } }, "network.uplink", /contains ";"/);
    expectRefused({ ...minimal, network: { uplink: "a-very-long-uplink-name" } }, "network.uplink", /Linux allows at most 15/);
    expectRefused({ ...minimal, netns: "../etc" }, "netns", /network namespace name/);
    expectRefused({ ...minimal, hostId: "host with spaces" }, "hostId", /expected 1–128 characters/);
    expectRefused({ ...minimal, metrics: { listen: "9464" } }, "metrics.listen", /host:port/);
    expectRefused({ ...minimal, metrics: { listen: "127.0.0.1:70000" } }, "metrics.listen", /host:port/);
  });
});

describe("parseAgentConfigText: YAML", () => {
  it("a syntax error names the file and line", () => {
    expect(() => parseAgentConfigText("management:\n  servers: [wss://a\n", environment, "/etc/v6agent/config.yaml")).toThrow(
      /^\/etc\/v6agent\/config.yaml: line \d+: /,
    );
  });

  it("a duplicate key is refused rather than the last one silently winning", () => {
    expect(() => parseAgentConfigText("logLevel: info\nlogLevel: debug\n", environment, "config.yaml")).toThrow(
      /config.yaml: line 2: .*unique/i,
    );
  });

  it("an empty file reports the first required field", () => {
    expect(() => parseAgentConfigText("", environment)).toThrow(/^management: required/);
  });

  it("round-trips through YAML", () => {
    expect(parseAgentConfigText(stringify(minimal), environment)).toEqual(parseAgentConfig(minimal, environment));
  });
});

describe("packaging and docs", () => {
  it("packaging/config.example.yaml parses with these rules", async () => {
    const text = await readFile(new URL("../../../packaging/config.example.yaml", import.meta.url), "utf8");
    const config = parseAgentConfigText(text, environment, "config.example.yaml");
    expect(config.management.servers).toEqual(["wss://mgmt-1.example.net:8443/agent", "wss://mgmt-2.example.net:8443/agent"]);
    expect(config.hypervisor).toEqual({ kind: "kvm", uri: "qemu:///system", domainType: "kvm" });
    expect(config.metrics.listen).toEqual({ host: "127.0.0.1", port: 9464 });
  });

  it("the error shown in docs/operators.md is the one the parser gives", async () => {
    const docs = await readFile(new URL("../../../docs/operators.md", import.meta.url), "utf8");
    const shown = /^v6agent: (management\.servers\[1\]: .*)$/m.exec(docs)?.[1];
    expect(shown).toBeDefined();
    expect(() => parseAgentConfig(withField("management", { servers: ["wss://a.example", "ws://192.0.2.10:9000"] }), environment)).toThrow(
      shown,
    );
  });

  it("the several-mistakes example in docs/operators.md is what the parser gives for that file", async () => {
    const docs = await readFile(new URL("../../../docs/operators.md", import.meta.url), "utf8");
    const shown = /^v6agent: (3 problems in \/etc\/v6agent\/config\.yaml:\n(?: {2}.*\n)+)/m.exec(docs)?.[1];
    expect(shown).toBeDefined();
    const file = stringify({ management: { servers: ["http://mgmt-1.example.net/"], tokenFile: "token" }, logLevel: "loud" });
    expect(() => parseAgentConfigText(file, environment, "/etc/v6agent/config.yaml")).toThrow((shown as string).trimEnd());
  });

  it("docs/operators.md carries the current configuration reference table", async () => {
    const docs = await readFile(new URL("../../../docs/operators.md", import.meta.url), "utf8");
    expect(docs).toContain(configReferenceMarkdown());
  });
});

describe("parseAgentConfig: every mistake in one run", () => {
  it("reports each bad field of a file once, in file order, and still parses the good ones", () => {
    const error = refusal({
      hostId: "bad host",
      management: { servers: ["wss://a.example", "http://b.example"], heartbeatSeconds: 0, tokenFile: "token" },
      hypervisor: { kind: "kvm", uri: "qemu system" },
      firewall: { backend: "iptables" },
      logLevel: "loud",
      stateDr: "/x",
    });
    expect(error.problems.map((problem) => problem.field)).toEqual([
      "stateDr",
      "hostId",
      "management.heartbeatSeconds",
      "management.servers[1]",
      "management.tokenFile",
      "hypervisor.uri",
      "logLevel",
      "firewall.backend",
    ]);
    expect(error.message.split("\n")[0]).toBe("8 problems:");
    expect(error.message).toContain('\n  management.servers[1]: "http://b.example": expected wss:// (or ws://), got http://');
    // A bad path is its own problem, not also a missing caFile on top of it.
    expect(error.message).not.toContain("management.caFile");
  });

  it("does not report what follows from another mistake (a section that is no mapping, an unreadable insecure)", () => {
    expect(refusal({ management: "wss://a.example" }).problems.map((problem) => problem.field)).toEqual(["management"]);
    expect(
      refusal(withField("management", { servers: ["ws://192.0.2.1"], insecure: "yes" })).problems.map((problem) => problem.field),
    ).toEqual(["management.insecure"]);
  });

  it("a YAML file with several syntax errors names each line", () => {
    expect(() => parseAgentConfigText("a: [1\nb: {2\n", environment, "c.yaml")).toThrow(/problems in c\.yaml:\n {2}c\.yaml: line \d+: /);
  });
});

describe("parseAgentConfig: TLS rules the channel would apply only when it connects", () => {
  it("wss:// needs the pinned caFile, naming the servers that need it", () => {
    expectRefused(
      { management: { servers: ["ws://127.0.0.1:9", "wss://a.example"], tokenFile: "/t" } },
      "management.caFile",
      /required for wss:\/\/ servers \(management.servers\[1\]\).*\/etc\/ssl\/certs\/ca-certificates\.crt/,
    );
  });

  it("a client certificate with only ws:// servers would never be presented", () => {
    expectRefused(
      { management: { servers: ["ws://127.0.0.1:9"], certFile: "/c.pem", keyFile: "/c.key" } },
      "management.certFile",
      /presented over wss:\/\/ only/,
    );
  });

  it("an inline token must fit an HTTP header", () => {
    expectRefused(withField("management", { tokenFile: undefined, token: "two words" }), "management.token", /one line of visible ASCII/);
  });

  it("the status socket path fits sun_path", () => {
    expect(parseAgentConfig({ ...minimal, statusSocket: "/tmp/s.sock" }, environment).statusSocket).toBe("/tmp/s.sock");
    expectRefused({ ...minimal, statusSocket: `/${"x".repeat(107)}` }, "statusSocket", /108 bytes long; .* at most 107/);
    expectRefused({ ...minimal, statusSocket: "run/s.sock" }, "statusSocket", /absolute path/);
  });
});

describe("loadAgentConfig", () => {
  let tls: TlsMaterial;
  let dir: string;
  beforeAll(async () => {
    tls = makeTlsMaterial();
    dir = await mkdtemp(join(tmpdir(), "v6agent-config-"));
  });
  afterAll(async () => {
    tls?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Writes the files and a config naming them; returns the config's path. */
  async function configWith(files: Record<string, string>, management: Record<string, unknown>): Promise<string> {
    const sub = await mkdtemp(join(dir, "case-"));
    for (const [name, content] of Object.entries(files)) await writeFile(join(sub, name), content);
    const resolved = Object.fromEntries(
      Object.entries(management).map(([key, value]) => [key, key.endsWith("File") ? join(sub, value as string) : value]),
    );
    const path = join(sub, "config.yaml");
    await writeFile(path, stringify({ management: { servers: ["wss://a.example"], ...resolved } }));
    return path;
  }

  it("names a referenced file that is not readable, and the config file itself when missing", async () => {
    const path = await configWith({ "ca.pem": tls.ca }, { caFile: "ca.pem", tokenFile: "token" });
    await expect(loadAgentConfig(path)).rejects.toThrow(/^management.tokenFile: .*token is not readable \(ENOENT\)/);
    await writeFile(join(path, "..", "token"), "secret\n");
    expect((await loadAgentConfig(path)).management.tokenFile).toBe(join(path, "..", "token"));
    await expect(loadAgentConfig(join(dir, "missing.yaml"))).rejects.toThrow(/missing.yaml: cannot read the configuration file/);
  });

  it("reports every unusable file in one run: a directory, an empty token, garbage for a CA, a key of another certificate", async () => {
    const path = await configWith(
      { token: "  \n", "ca.pem": "not a certificate\n", "agent.pem": tls.clientCert, "agent.key": tls.host2Key },
      { caFile: "ca.pem", tokenFile: "token", certFile: "agent.pem", keyFile: "agent.key" },
    );
    const error = (await loadAgentConfig(path).catch((caught: unknown) => caught)) as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.problems).toEqual([
      { field: "management.tokenFile", message: expect.stringMatching(/token is empty$/) },
      { field: "management.caFile", message: expect.stringMatching(/ca\.pem holds no PEM certificate/) },
      { field: "management.keyFile", message: expect.stringMatching(/agent\.key is not the private key of .*agent\.pem$/) },
    ]);
    expect(error.message).toMatch(/^3 problems in .*config\.yaml:\n/);
    const directory = await configWith({}, { caFile: ".", tokenFile: "." });
    expect(((await loadAgentConfig(directory).catch((caught: unknown) => caught)) as ConfigError).problems).toEqual([
      { field: "management.caFile", message: expect.stringMatching(/is not a regular file$/) },
      { field: "management.tokenFile", message: expect.stringMatching(/is not a regular file$/) },
    ]);
  });

  it("a token file of two lines would make the channel throw in the middle of a reconnect: refused at load", async () => {
    const path = await configWith({ "ca.pem": tls.ca, token: "abc\ndef\n" }, { caFile: "ca.pem", tokenFile: "token" });
    await expect(loadAgentConfig(path)).rejects.toThrow(/^management.tokenFile: .*token: the token must be one line of visible ASCII/);
  });

  it("accepts good TLS material, and what it accepts the daemon's channel accepts too", async () => {
    const path = await configWith(
      { "ca.pem": tls.ca, token: "secret\n", "agent.pem": tls.clientCert, "agent.key": tls.clientKey },
      { caFile: "ca.pem", tokenFile: "token", certFile: "agent.pem", keyFile: "agent.key" },
    );
    const config = await loadAgentConfig(path);
    const security = channelSecurity(config.management);
    expect(security.token).toBe("secret");
    expect(() => checkServerUrl(config.management.servers[0] as string, security, "servers[0]")).not.toThrow();
    expect(
      () =>
        new AgentChannel({ servers: config.management.servers, ...security, hello: async () => ({}) as never, handle: async () => ({}) }),
    ).not.toThrow();
  });
});

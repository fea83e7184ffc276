import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { loadAgentConfig, parseAgentConfig, parseAgentConfigText } from "../../../src/daemon/config.js";
import { configReferenceMarkdown } from "../../../src/daemon/config-reference.js";
import { InvalidArgumentError } from "../../../src/errors.js";

const environment = { machineId: "0123456789abcdef0123456789abcdef", hostname: "kvm-host-7" };
const minimal = { management: { servers: ["wss://mgmt.example:8443/agent"], tokenFile: "/etc/v6agent/token" } };

/** The config `minimal` with `patch` merged in at `section` (or the root). */
function withField(section: string | undefined, patch: Record<string, unknown>): Record<string, unknown> {
  if (section === undefined) return { ...minimal, ...patch };
  const base = (minimal as Record<string, Record<string, unknown>>)[section] ?? {};
  return { ...minimal, [section]: { ...base, ...patch } };
}

/** Expects parse to fail with an InvalidArgumentError naming `field`, message matching `message`. */
function expectRefused(raw: unknown, field: string, message: RegExp) {
  let caught: unknown;
  try {
    parseAgentConfig(raw, environment);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(InvalidArgumentError);
  expect((caught as InvalidArgumentError).field).toBe(field);
  expect((caught as InvalidArgumentError).message).toMatch(message);
}

describe("parseAgentConfig: defaults", () => {
  it("fills every documented default from a minimal file", () => {
    expect(parseAgentConfig(minimal, environment)).toEqual({
      hostId: "0123456789abcdef0123456789abcdef",
      management: {
        servers: ["wss://mgmt.example:8443/agent"],
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
    expectRefused({ management: { servers: ["wss://a.example"] } }, "management", /no credentials/);
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
      { ...minimal, hypervisor: { kind: "xenserver", uri: "qemu:///system" } },
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

  it("docs/operators.md carries the current configuration reference table", async () => {
    const docs = await readFile(new URL("../../../docs/operators.md", import.meta.url), "utf8");
    expect(docs).toContain(configReferenceMarkdown());
  });
});

describe("loadAgentConfig", () => {
  it("names a referenced file that is not readable, and the config file itself when missing", async () => {
    const dir = await mkdtemp(join(tmpdir(), "v6agent-config-"));
    try {
      const path = join(dir, "config.yaml");
      await writeFile(path, stringify({ management: { servers: ["wss://a.example"], tokenFile: join(dir, "token") } }));
      await expect(loadAgentConfig(path)).rejects.toThrow(/^management.tokenFile: .*token is not readable \(ENOENT\)/);
      await writeFile(join(dir, "token"), "secret\n");
      expect((await loadAgentConfig(path)).management.tokenFile).toBe(join(dir, "token"));
      await expect(loadAgentConfig(join(dir, "missing.yaml"))).rejects.toThrow(/missing.yaml: cannot read the configuration file/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import { parseDocument } from "yaml";
import { type InterfaceName, parseInterfaceName } from "../addressing/index.js";
import { isLoopbackHost } from "../channel/connection-options.js";
import { InvalidArgumentError } from "../errors.js";
import { CONFIG_DEFAULTS } from "./config-defaults.js";
import {
  absolutePath,
  boolean,
  HEADER_SAFE,
  hostId,
  integer,
  namespaceName,
  nonEmptyString,
  oneOf,
  type Raw,
  section,
  socketPath,
  TOKEN_CHARACTERS,
  typeName,
} from "./config-fields.js";
import { checkConfigFiles } from "./config-files.js";
import { ConfigProblems } from "./config-problems.js";

export { ConfigError, type ConfigProblem } from "./config-problems.js";

/**
 * The daemon's configuration (`/etc/v6agent/config.yaml`), parsed and validated once at start
 * (and on SIGHUP). Every field is checked with an error naming its path (`management.servers[1]`),
 * every mistake of a file is reported in one run (ConfigError), unknown keys are refused so a
 * typo never silently falls back to a default, and every default is defined once in
 * CONFIG_DEFAULTS (config-defaults.ts) and listed in CONFIG_REFERENCE (config-reference.ts), from
 * which docs/operators.md's table is generated. What the daemon would otherwise find wrong only
 * later (a file it cannot read, TLS material it cannot use, a token no HTTP header can carry) is
 * checked by `loadAgentConfig` (config-files.ts).
 */
export interface AgentConfig {
  hostId: string;
  management: ManagementConfig;
  hypervisor: HypervisorConfig;
  network: { uplink?: InterfaceName; mtu?: number };
  firewall: { backend: FirewallBackendChoice };
  stateDir: string;
  logLevel: LogLevel;
  metrics: { listen?: ListenAddress };
  /** The unix socket `v6agent status` reads (root only). */
  statusSocket: string;
  netns?: string;
  /** Interval of the safety-net reconcile (events do the real-time work). */
  reconcileSeconds: number;
}

export interface ManagementConfig {
  /** ws:// or wss:// URLs, tried in order. */
  servers: string[];
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  tokenFile?: string;
  token?: string;
  insecure: boolean;
  heartbeatSeconds: number;
  timeoutSeconds: number;
}

export type HypervisorConfig =
  | { kind: "kvm"; uri: string; domainType: "kvm" | "qemu" }
  | { kind: "xenserver"; xapi: { url: string; username: string; passwordFile: string; allowSelfSigned: boolean } };

export type FirewallBackendChoice = "auto" | "nft" | "xtables";
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace";
export interface ListenAddress {
  host: string;
  port: number;
}

export const DEFAULT_CONFIG_PATH = "/etc/v6agent/config.yaml";

/** Facts the defaults come from, passed in so parsing stays pure. */
export interface ConfigEnvironment {
  machineId?: string;
  hostname: string;
}

const ROOT_FIELDS = [
  "hostId",
  "management",
  "hypervisor",
  "network",
  "firewall",
  "stateDir",
  "logLevel",
  "metrics",
  "statusSocket",
  "netns",
  "reconcileSeconds",
] as const;

/** Validates already-parsed YAML into an AgentConfig; throws a ConfigError naming every bad field. */
export function parseAgentConfig(raw: unknown, environment: ConfigEnvironment): AgentConfig {
  const problems = new ConfigProblems();
  const config = collectAgentConfig(raw, environment, problems);
  problems.throwIfAny();
  return config as AgentConfig;
}

/** Parses YAML text; syntax errors and duplicate keys name the file and line. */
export function parseAgentConfigText(text: string, environment: ConfigEnvironment, source = "config"): AgentConfig {
  const problems = new ConfigProblems();
  const config = collectConfigText(text, environment, source, problems);
  problems.throwIfAny(source);
  return config as AgentConfig;
}

/**
 * Reads, parses and validates the file, then checks what the daemon would otherwise find wrong
 * only later: every file it names is a readable, non-empty file, TLS material parses (and the key
 * is the certificate's), a token fits an HTTP header, and every server URL passes the channel's
 * own rule. Throws one ConfigError with every problem found.
 */
export async function loadAgentConfig(path = DEFAULT_CONFIG_PATH): Promise<AgentConfig> {
  const problems = new ConfigProblems();
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    problems.add(path, `cannot read the configuration file: ${(error as Error).message}`);
    problems.throwIfAny(path);
    throw error;
  }
  const machineId = await readFile("/etc/machine-id", "utf8").then(
    (content) => content.trim(),
    () => undefined,
  );
  const config = collectConfigText(text, { hostname: hostname(), ...(machineId ? { machineId } : {}) }, path, problems);
  await checkConfigFiles(config, problems);
  problems.throwIfAny(path);
  return config as AgentConfig;
}

/** What could be parsed; undefined fields have a problem recorded. */
export type ConfigDraft = Partial<Omit<AgentConfig, "management" | "hypervisor">> & {
  management?: Partial<ManagementConfig>;
  hypervisor?: HypervisorConfig;
};

function collectConfigText(text: string, environment: ConfigEnvironment, source: string, problems: ConfigProblems): ConfigDraft {
  const document = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (document.errors.length > 0) {
    for (const problem of document.errors) {
      const line = text.slice(0, problem.pos[0]).split("\n").length;
      problems.add(source, `line ${line}: ${problem.message.split("\n")[0]}`);
    }
    return {};
  }
  return collectAgentConfig(document.toJS(), environment, problems);
}

function collectAgentConfig(raw: unknown, environment: ConfigEnvironment, problems: ConfigProblems): ConfigDraft {
  const root = section(raw ?? {}, "(config)", ROOT_FIELDS, problems);
  if (root === undefined) return {};
  const field = problems.field.bind(problems);
  const firewall = section(root.firewall ?? {}, "firewall", ["backend"], problems);
  const config: ConfigDraft = {
    hostId: field(() => (root.hostId === undefined ? defaultHostId(environment) : hostId(root.hostId, "hostId"))),
    management: management(root.management, problems),
    hypervisor: hypervisor(root.hypervisor, problems),
    network: network(root.network, problems),
    stateDir: field(() => (root.stateDir === undefined ? CONFIG_DEFAULTS.stateDir : absolutePath(root.stateDir, "stateDir"))),
    logLevel: field(() => oneOf(root.logLevel ?? CONFIG_DEFAULTS.logLevel, "logLevel", LOG_LEVELS)),
    metrics: field(() => metrics(root.metrics, problems)),
    statusSocket: field(() => socketPath(root.statusSocket ?? CONFIG_DEFAULTS.statusSocket, "statusSocket")),
    reconcileSeconds: field(() =>
      root.reconcileSeconds === undefined
        ? CONFIG_DEFAULTS.reconcileSeconds
        : integer(root.reconcileSeconds, "reconcileSeconds", 1, 86_400),
    ),
  };
  if (firewall !== undefined) {
    const backend = field(() => oneOf(firewall.backend ?? CONFIG_DEFAULTS.firewallBackend, "firewall.backend", FIREWALL_BACKENDS));
    if (backend !== undefined) config.firewall = { backend };
  }
  if (root.netns !== undefined) config.netns = field(() => namespaceName(root.netns, "netns"));
  return config;
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace"] as const;
const FIREWALL_BACKENDS = ["auto", "nft", "xtables"] as const;
const MANAGEMENT_FIELDS = [
  "servers",
  "caFile",
  "certFile",
  "keyFile",
  "tokenFile",
  "token",
  "insecure",
  "heartbeatSeconds",
  "timeoutSeconds",
] as const;

function management(input: unknown, problems: ConfigProblems): Partial<ManagementConfig> | undefined {
  if (input === undefined) {
    problems.add("management", "required: at least management.servers");
    return undefined;
  }
  const raw = section(input, "management", MANAGEMENT_FIELDS, problems);
  if (raw === undefined) return undefined;
  const field = problems.field.bind(problems);
  const insecure = field(() => (raw.insecure === undefined ? CONFIG_DEFAULTS.insecure : boolean(raw.insecure, "management.insecure")));
  const config: Partial<ManagementConfig> = {
    insecure,
    heartbeatSeconds: field(() =>
      raw.heartbeatSeconds === undefined
        ? CONFIG_DEFAULTS.heartbeatSeconds
        : integer(raw.heartbeatSeconds, "management.heartbeatSeconds", 1, 3600),
    ),
    timeoutSeconds: field(() =>
      raw.timeoutSeconds === undefined
        ? CONFIG_DEFAULTS.timeoutSeconds
        : integer(raw.timeoutSeconds, "management.timeoutSeconds", 2, 86_400),
    ),
  };
  if (!Array.isArray(raw.servers) || raw.servers.length === 0) {
    problems.add("management.servers", "expected a non-empty list of ws:// or wss:// URLs");
  } else {
    // An unreadable `insecure` is its own problem: do not add a plain-text one on top of it.
    const servers = raw.servers.map((server, index) => field(() => serverUrl(server, `management.servers[${index}]`, insecure ?? true)));
    if (servers.every((server) => server !== undefined)) config.servers = servers as string[];
  }
  const { heartbeatSeconds, timeoutSeconds } = config;
  if (heartbeatSeconds !== undefined && timeoutSeconds !== undefined && timeoutSeconds <= heartbeatSeconds) {
    problems.add(
      "management.timeoutSeconds",
      `${timeoutSeconds} must be greater than management.heartbeatSeconds (${heartbeatSeconds}), or every connection looks dead`,
    );
  }
  let pathProblem = false;
  for (const key of ["caFile", "certFile", "keyFile", "tokenFile"] as const) {
    if (raw[key] === undefined) continue;
    config[key] = field(() => absolutePath(raw[key], `management.${key}`));
    pathProblem ||= config[key] === undefined;
  }
  if (raw.token !== undefined) config.token = field(() => nonEmptyString(raw.token, "management.token"));
  credentialProblems(raw, config, problems);
  if (!pathProblem) tlsProblems(raw.servers, config, problems);
  return config;
}

/** Which credentials go together (raw: what the file names, so a bad path is not also "missing"). */
function credentialProblems(raw: Raw, config: Partial<ManagementConfig>, problems: ConfigProblems): void {
  if ((raw.certFile === undefined) !== (raw.keyFile === undefined)) {
    problems.add(
      raw.certFile === undefined ? "management.certFile" : "management.keyFile",
      "certFile and keyFile go together (mutual TLS)",
    );
  }
  if (raw.token !== undefined && raw.tokenFile !== undefined) {
    problems.add("management.token", "set either token or tokenFile, not both (tokenFile is preferred)");
  }
  if (raw.certFile === undefined && raw.token === undefined && raw.tokenFile === undefined) {
    problems.add("management", "no credentials: set tokenFile (or token), or certFile and keyFile for mutual TLS");
  }
  if (config.token !== undefined && !HEADER_SAFE.test(config.token)) problems.add("management.token", TOKEN_CHARACTERS);
}

/**
 * TLS rules the channel applies only when it connects (src/channel/connection-options.ts), here
 * at load: a `wss://` server is verified against the pinned `caFile` and nothing else (the
 * system's CAs are a choice the operator makes by pointing `caFile` at them), and a client
 * certificate is only ever presented over `wss://`.
 */
function tlsProblems(servers: unknown, config: Partial<ManagementConfig>, problems: ConfigProblems): void {
  if (!Array.isArray(servers)) return;
  const secure = servers.flatMap((server, index) =>
    typeof server === "string" && server.toLowerCase().startsWith("wss:") ? [`management.servers[${index}]`] : [],
  );
  if (secure.length > 0 && config.caFile === undefined) {
    problems.add(
      "management.caFile",
      `required for wss:// servers (${secure.join(", ")}): the agent trusts only the CA pinned here; to trust the system's CAs, set it to /etc/ssl/certs/ca-certificates.crt`,
    );
  }
  if (secure.length === 0 && config.certFile !== undefined) {
    problems.add("management.certFile", "a client certificate is presented over wss:// only, and every server here is ws://");
  }
}

function serverUrl(input: unknown, field: string, insecure: boolean): string {
  if (typeof input !== "string") throw new InvalidArgumentError(field, `expected a ws:// or wss:// URL, got ${typeName(input)}`);
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new InvalidArgumentError(field, `${JSON.stringify(input)} is not a URL`);
  }
  if (url.protocol !== "wss:" && url.protocol !== "ws:") {
    throw new InvalidArgumentError(field, `${JSON.stringify(input)}: expected wss:// (or ws://), got ${url.protocol}//`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new InvalidArgumentError(field, "credentials in the URL are not allowed; use management.tokenFile");
  }
  if (url.hash !== "") throw new InvalidArgumentError(field, "a URL fragment (#...) means nothing here");
  if (url.protocol === "ws:" && !insecure && !isLoopbackHost(url.hostname)) {
    throw new InvalidArgumentError(
      field,
      `ws:// to ${url.hostname} would send commands and tokens in plain text; use wss://, or set management.insecure: true`,
    );
  }
  return url.href;
}

function hypervisor(input: unknown, problems: ConfigProblems): HypervisorConfig | undefined {
  const raw = section(input ?? {}, "hypervisor", ["kind", "uri", "domainType", "xapi"], problems);
  if (raw === undefined) return undefined;
  const field = problems.field.bind(problems);
  const kind = field(() => oneOf(raw.kind ?? CONFIG_DEFAULTS.hypervisorKind, "hypervisor.kind", ["kvm", "xenserver"] as const));
  if (kind === undefined) return undefined;
  if (kind === "kvm") {
    if (raw.xapi !== undefined) problems.add("hypervisor.xapi", "only for hypervisor.kind: xenserver");
    const domainType = field(() => oneOf(raw.domainType ?? CONFIG_DEFAULTS.domainType, "hypervisor.domainType", ["kvm", "qemu"] as const));
    const uri = field(() => libvirtUri(raw.uri));
    return domainType === undefined || uri === undefined ? undefined : { kind, uri, domainType };
  }
  if (raw.domainType !== undefined) problems.add("hypervisor.domainType", "only for hypervisor.kind: kvm");
  if (raw.uri !== undefined) problems.add("hypervisor.uri", "only for hypervisor.kind: kvm (XenServer uses hypervisor.xapi)");
  if (raw.xapi === undefined) {
    problems.add("hypervisor.xapi", "required for hypervisor.kind: xenserver (url, passwordFile)");
    return undefined;
  }
  const xapi = section(raw.xapi, "hypervisor.xapi", ["url", "username", "passwordFile", "allowSelfSigned"], problems);
  if (xapi === undefined) return undefined;
  const url = field(() => xapiUrl(xapi.url));
  const passwordFile = field(() => {
    if (xapi.passwordFile === undefined)
      throw new InvalidArgumentError("hypervisor.xapi.passwordFile", "required: a file holding the XAPI password");
    return absolutePath(xapi.passwordFile, "hypervisor.xapi.passwordFile");
  });
  const username = field(() => nonEmptyString(xapi.username ?? CONFIG_DEFAULTS.xapiUsername, "hypervisor.xapi.username"));
  const allowSelfSigned = field(() =>
    xapi.allowSelfSigned === undefined ? CONFIG_DEFAULTS.allowSelfSigned : boolean(xapi.allowSelfSigned, "hypervisor.xapi.allowSelfSigned"),
  );
  if (url === undefined || passwordFile === undefined || username === undefined || allowSelfSigned === undefined) return undefined;
  return { kind, xapi: { url, username, passwordFile, allowSelfSigned } };
}

function libvirtUri(input: unknown): string {
  if (input === undefined) return CONFIG_DEFAULTS.libvirtUri;
  if (typeof input !== "string" || !/^[a-z][a-z0-9+]*:\/\/[^\s]*$/.test(input)) {
    throw new InvalidArgumentError("hypervisor.uri", `${JSON.stringify(input)} is not a libvirt URI (e.g. qemu:///system)`);
  }
  return input;
}

function xapiUrl(input: unknown): string {
  const field = "hypervisor.xapi.url";
  if (input === undefined) throw new InvalidArgumentError(field, "required, e.g. https://xenserver-1.example");
  let url: URL;
  try {
    url = new URL(String(input));
  } catch {
    throw new InvalidArgumentError(field, `${JSON.stringify(input)} is not a URL`);
  }
  if (typeof input !== "string" || (url.protocol !== "https:" && url.protocol !== "http:")) {
    throw new InvalidArgumentError(field, `${JSON.stringify(input)}: expected https:// (or http://)`);
  }
  return url.href;
}

function network(input: unknown, problems: ConfigProblems): AgentConfig["network"] | undefined {
  const raw = section(input ?? {}, "network", ["uplink", "mtu"], problems);
  if (raw === undefined) return undefined;
  const config: AgentConfig["network"] = {};
  if (raw.uplink !== undefined) config.uplink = problems.field(() => parseInterfaceName(raw.uplink, "network.uplink"));
  if (raw.mtu !== undefined) config.mtu = problems.field(() => integer(raw.mtu, "network.mtu", 1280, 65_535));
  return config;
}

function metrics(input: unknown, problems: ConfigProblems): AgentConfig["metrics"] {
  const raw = section(input ?? {}, "metrics", ["listen"], problems);
  if (raw?.listen === undefined) return {};
  const field = "metrics.listen";
  if (typeof raw.listen !== "string") throw new InvalidArgumentError(field, `expected host:port, got ${typeName(raw.listen)}`);
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(raw.listen);
  const port = Number(match?.[3]);
  if (match === null || port < 1 || port > 65_535) {
    throw new InvalidArgumentError(field, `${JSON.stringify(raw.listen)}: expected host:port such as 127.0.0.1:9464 or [::1]:9464`);
  }
  return { listen: { host: (match[1] ?? match[2]) as string, port } };
}

function defaultHostId(environment: ConfigEnvironment): string {
  if (environment.machineId !== undefined && /^[0-9a-f]{32}$/.test(environment.machineId)) return environment.machineId;
  return hostId(environment.hostname, "hostId (default from the hostname)");
}

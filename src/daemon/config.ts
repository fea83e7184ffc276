import { constants } from "node:fs";
import { access, readFile } from "node:fs/promises";
import { hostname } from "node:os";
import { isAbsolute } from "node:path";
import { parseDocument } from "yaml";
import { type InterfaceName, parseInterfaceName } from "../addressing/index.js";
import { isLoopbackHost } from "../channel/connection-options.js";
import { InvalidArgumentError } from "../errors.js";
import { CONFIG_DEFAULTS } from "./config-defaults.js";

/**
 * The daemon's configuration (`/etc/v6agent/config.yaml`), parsed and validated once at start
 * (and on SIGHUP). Every field is checked with an error naming its path (`management.servers[1]`),
 * unknown keys are refused so a typo never silently falls back to a default, and every default is
 * defined once in CONFIG_DEFAULTS (config-defaults.ts) and listed in CONFIG_REFERENCE
 * (config-reference.ts), from which docs/operators.md's table is generated.
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

type Raw = Record<string, unknown>;

/** Validates already-parsed YAML into an AgentConfig; throws InvalidArgumentError naming the field. */
export function parseAgentConfig(raw: unknown, environment: ConfigEnvironment): AgentConfig {
  const root = object(raw ?? {}, "(config)", [
    "hostId",
    "management",
    "hypervisor",
    "network",
    "firewall",
    "stateDir",
    "logLevel",
    "metrics",
    "netns",
    "reconcileSeconds",
  ]);
  const config: AgentConfig = {
    hostId: root.hostId === undefined ? defaultHostId(environment) : hostId(root.hostId, "hostId"),
    management: management(root.management),
    hypervisor: hypervisor(root.hypervisor),
    network: network(root.network),
    firewall: {
      backend: oneOf(object(root.firewall ?? {}, "firewall", ["backend"]).backend ?? CONFIG_DEFAULTS.firewallBackend, "firewall.backend", [
        "auto",
        "nft",
        "xtables",
      ] as const),
    },
    stateDir: root.stateDir === undefined ? CONFIG_DEFAULTS.stateDir : absolutePath(root.stateDir, "stateDir"),
    logLevel: oneOf(root.logLevel ?? CONFIG_DEFAULTS.logLevel, "logLevel", ["fatal", "error", "warn", "info", "debug", "trace"] as const),
    metrics: metrics(root.metrics),
    reconcileSeconds:
      root.reconcileSeconds === undefined
        ? CONFIG_DEFAULTS.reconcileSeconds
        : integer(root.reconcileSeconds, "reconcileSeconds", 1, 86_400),
  };
  if (root.netns !== undefined) config.netns = namespaceName(root.netns, "netns");
  return config;
}

/** Parses YAML text; syntax errors and duplicate keys name the file and line. */
export function parseAgentConfigText(text: string, environment: ConfigEnvironment, source = "config"): AgentConfig {
  const document = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  const problem = document.errors[0];
  if (problem !== undefined) {
    const line = text.slice(0, problem.pos[0]).split("\n").length;
    throw new InvalidArgumentError(source, `line ${line}: ${problem.message.split("\n")[0]}`);
  }
  return parseAgentConfig(document.toJS(), environment);
}

/**
 * Reads, parses and validates the file, then checks that every file it names is readable now
 * rather than at the first reconnect.
 */
export async function loadAgentConfig(path = DEFAULT_CONFIG_PATH): Promise<AgentConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new InvalidArgumentError(path, `cannot read the configuration file: ${(error as Error).message}`);
  }
  const machineId = await readFile("/etc/machine-id", "utf8").then(
    (content) => content.trim(),
    () => undefined,
  );
  const config = parseAgentConfigText(text, { hostname: hostname(), ...(machineId ? { machineId } : {}) }, path);
  const files: [string, string | undefined][] = [
    ["management.caFile", config.management.caFile],
    ["management.certFile", config.management.certFile],
    ["management.keyFile", config.management.keyFile],
    ["management.tokenFile", config.management.tokenFile],
    ["hypervisor.xapi.passwordFile", config.hypervisor.kind === "xenserver" ? config.hypervisor.xapi.passwordFile : undefined],
  ];
  for (const [field, file] of files) {
    if (file === undefined) continue;
    await access(file, constants.R_OK).catch((error: NodeJS.ErrnoException) => {
      throw new InvalidArgumentError(field, `${file} is not readable (${error.code ?? error.message})`);
    });
  }
  return config;
}

function management(input: unknown): ManagementConfig {
  if (input === undefined) throw new InvalidArgumentError("management", "required: at least management.servers");
  const raw = object(input, "management", [
    "servers",
    "caFile",
    "certFile",
    "keyFile",
    "tokenFile",
    "token",
    "insecure",
    "heartbeatSeconds",
    "timeoutSeconds",
  ]);
  const insecure = raw.insecure === undefined ? CONFIG_DEFAULTS.insecure : boolean(raw.insecure, "management.insecure");
  if (!Array.isArray(raw.servers) || raw.servers.length === 0) {
    throw new InvalidArgumentError("management.servers", "expected a non-empty list of ws:// or wss:// URLs");
  }
  const servers = raw.servers.map((server, index) => serverUrl(server, `management.servers[${index}]`, insecure));
  const config: ManagementConfig = {
    servers,
    insecure,
    heartbeatSeconds:
      raw.heartbeatSeconds === undefined
        ? CONFIG_DEFAULTS.heartbeatSeconds
        : integer(raw.heartbeatSeconds, "management.heartbeatSeconds", 1, 3600),
    timeoutSeconds:
      raw.timeoutSeconds === undefined
        ? CONFIG_DEFAULTS.timeoutSeconds
        : integer(raw.timeoutSeconds, "management.timeoutSeconds", 2, 86_400),
  };
  if (config.timeoutSeconds <= config.heartbeatSeconds) {
    throw new InvalidArgumentError(
      "management.timeoutSeconds",
      `${config.timeoutSeconds} must be greater than management.heartbeatSeconds (${config.heartbeatSeconds}), or every connection looks dead`,
    );
  }
  for (const key of ["caFile", "certFile", "keyFile", "tokenFile"] as const) {
    if (raw[key] !== undefined) config[key] = absolutePath(raw[key], `management.${key}`);
  }
  if (raw.token !== undefined) {
    if (typeof raw.token !== "string" || raw.token.trim() === "")
      throw new InvalidArgumentError("management.token", "expected a non-empty string");
    config.token = raw.token;
  }
  if ((config.certFile === undefined) !== (config.keyFile === undefined)) {
    throw new InvalidArgumentError(
      config.certFile === undefined ? "management.certFile" : "management.keyFile",
      "certFile and keyFile go together (mutual TLS)",
    );
  }
  if (config.token !== undefined && config.tokenFile !== undefined) {
    throw new InvalidArgumentError("management.token", "set either token or tokenFile, not both (tokenFile is preferred)");
  }
  if (config.certFile === undefined && config.token === undefined && config.tokenFile === undefined) {
    throw new InvalidArgumentError("management", "no credentials: set tokenFile (or token), or certFile and keyFile for mutual TLS");
  }
  return config;
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

function hypervisor(input: unknown): HypervisorConfig {
  const raw = object(input ?? {}, "hypervisor", ["kind", "uri", "domainType", "xapi"]);
  const kind = oneOf(raw.kind ?? CONFIG_DEFAULTS.hypervisorKind, "hypervisor.kind", ["kvm", "xenserver"] as const);
  if (kind === "kvm") {
    if (raw.xapi !== undefined) throw new InvalidArgumentError("hypervisor.xapi", "only for hypervisor.kind: xenserver");
    const domainType = oneOf(raw.domainType ?? CONFIG_DEFAULTS.domainType, "hypervisor.domainType", ["kvm", "qemu"] as const);
    if (raw.uri === undefined) return { kind, uri: CONFIG_DEFAULTS.libvirtUri, domainType };
    if (typeof raw.uri !== "string" || !/^[a-z][a-z0-9+]*:\/\/[^\s]*$/.test(raw.uri)) {
      throw new InvalidArgumentError("hypervisor.uri", `${JSON.stringify(raw.uri)} is not a libvirt URI (e.g. qemu:///system)`);
    }
    return { kind, uri: raw.uri, domainType };
  }
  if (raw.domainType !== undefined) throw new InvalidArgumentError("hypervisor.domainType", "only for hypervisor.kind: kvm");
  if (raw.uri !== undefined)
    throw new InvalidArgumentError("hypervisor.uri", "only for hypervisor.kind: kvm (XenServer uses hypervisor.xapi)");
  if (raw.xapi === undefined)
    throw new InvalidArgumentError("hypervisor.xapi", "required for hypervisor.kind: xenserver (url, passwordFile)");
  const xapi = object(raw.xapi, "hypervisor.xapi", ["url", "username", "passwordFile", "allowSelfSigned"]);
  if (xapi.url === undefined) throw new InvalidArgumentError("hypervisor.xapi.url", "required, e.g. https://xenserver-1.example");
  let url: URL;
  try {
    url = new URL(String(xapi.url));
  } catch {
    throw new InvalidArgumentError("hypervisor.xapi.url", `${JSON.stringify(xapi.url)} is not a URL`);
  }
  if (typeof xapi.url !== "string" || (url.protocol !== "https:" && url.protocol !== "http:")) {
    throw new InvalidArgumentError("hypervisor.xapi.url", `${JSON.stringify(xapi.url)}: expected https:// (or http://)`);
  }
  if (xapi.passwordFile === undefined)
    throw new InvalidArgumentError("hypervisor.xapi.passwordFile", "required: a file holding the XAPI password");
  const username = xapi.username ?? CONFIG_DEFAULTS.xapiUsername;
  if (typeof username !== "string" || username === "")
    throw new InvalidArgumentError("hypervisor.xapi.username", "expected a non-empty string");
  return {
    kind,
    xapi: {
      url: url.href,
      username,
      passwordFile: absolutePath(xapi.passwordFile, "hypervisor.xapi.passwordFile"),
      allowSelfSigned:
        xapi.allowSelfSigned === undefined
          ? CONFIG_DEFAULTS.allowSelfSigned
          : boolean(xapi.allowSelfSigned, "hypervisor.xapi.allowSelfSigned"),
    },
  };
}

function network(input: unknown): AgentConfig["network"] {
  const raw = object(input ?? {}, "network", ["uplink", "mtu"]);
  const config: AgentConfig["network"] = {};
  if (raw.uplink !== undefined) config.uplink = parseInterfaceName(raw.uplink, "network.uplink");
  if (raw.mtu !== undefined) config.mtu = integer(raw.mtu, "network.mtu", 1280, 65_535);
  return config;
}

function metrics(input: unknown): AgentConfig["metrics"] {
  const raw = object(input ?? {}, "metrics", ["listen"]);
  if (raw.listen === undefined) return {};
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

function hostId(input: unknown, field: string): string {
  if (typeof input !== "string" || !/^[A-Za-z0-9_.:-]{1,128}$/.test(input)) {
    throw new InvalidArgumentError(field, `${JSON.stringify(input)}: expected 1–128 characters of letters, digits, '_', '.', ':', '-'`);
  }
  return input;
}

function namespaceName(input: unknown, field: string): string {
  if (typeof input !== "string" || !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(input)) {
    throw new InvalidArgumentError(
      field,
      `${JSON.stringify(input)}: expected a network namespace name (letters, digits, '_', '.', '-'; up to 64)`,
    );
  }
  return input;
}

function object(input: unknown, field: string, known: readonly string[]): Raw {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new InvalidArgumentError(field, `expected a mapping, got ${typeName(input)}`);
  }
  for (const key of Object.keys(input)) {
    if (!known.includes(key)) {
      const prefix = field === "(config)" ? "" : `${field}.`;
      const hint = known.find((candidate) => candidate.toLowerCase() === key.toLowerCase().replaceAll(/[-_]/g, ""));
      throw new InvalidArgumentError(
        `${prefix}${key}`,
        `unknown field${hint ? ` (did you mean ${hint}?)` : ""}; known: ${known.join(", ")}`,
      );
    }
  }
  return input as Raw;
}

function oneOf<T extends string>(input: unknown, field: string, choices: readonly T[]): T {
  if (typeof input !== "string" || !(choices as readonly string[]).includes(input)) {
    throw new InvalidArgumentError(field, `${JSON.stringify(input)}: expected one of ${choices.join(", ")}`);
  }
  return input as T;
}

function boolean(input: unknown, field: string): boolean {
  if (typeof input !== "boolean") throw new InvalidArgumentError(field, `expected true or false, got ${JSON.stringify(input)}`);
  return input;
}

function integer(input: unknown, field: string, min: number, max: number): number {
  if (typeof input !== "number" || !Number.isInteger(input) || input < min || input > max) {
    throw new InvalidArgumentError(field, `expected an integer from ${min} to ${max}, got ${JSON.stringify(input)}`);
  }
  return input;
}

function absolutePath(input: unknown, field: string): string {
  if (typeof input !== "string" || !isAbsolute(input) || input.includes("\0")) {
    throw new InvalidArgumentError(field, `expected an absolute path, got ${JSON.stringify(input)}`);
  }
  return input;
}

function typeName(input: unknown): string {
  if (input === null) return "null";
  if (Array.isArray(input)) return "a list";
  return typeof input;
}

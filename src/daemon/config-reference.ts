import { CONFIG_DEFAULTS } from "./config-defaults.js";

export interface ConfigReferenceRow {
  field: string;
  type: string;
  default: string;
  description: string;
}

/** Every field, its type and default: the source of the operator documentation's table. */
export const CONFIG_REFERENCE: readonly ConfigReferenceRow[] = [
  {
    field: "hostId",
    type: "string (1–128 of `A-Za-z0-9_.:-`)",
    default: "/etc/machine-id, else the hostname",
    description: "This host's identity towards the management server.",
  },
  {
    field: "management.servers",
    type: "list of `wss://` / `ws://` URLs",
    default: "required",
    description: "Management servers, tried in order with backoff.",
  },
  {
    field: "management.caFile",
    type: "absolute path",
    default: "system CAs",
    description: "CA bundle the server's certificate must chain to (pinning).",
  },
  {
    field: "management.certFile",
    type: "absolute path",
    default: "none",
    description: "Client certificate for mutual TLS (with `keyFile`).",
  },
  { field: "management.keyFile", type: "absolute path", default: "none", description: "Private key of `certFile`." },
  {
    field: "management.tokenFile",
    type: "absolute path",
    default: "none",
    description: "File holding the bearer token (preferred over `token`).",
  },
  {
    field: "management.token",
    type: "string",
    default: "none",
    description: "Inline bearer token; use `tokenFile` to keep it out of the config.",
  },
  {
    field: "management.insecure",
    type: "boolean",
    default: String(CONFIG_DEFAULTS.insecure),
    description: "Allow `ws://` to a non-loopback server (plain text).",
  },
  {
    field: "management.heartbeatSeconds",
    type: "integer 1–3600",
    default: String(CONFIG_DEFAULTS.heartbeatSeconds),
    description: "Longest interval between heartbeats; the server's hello answer may ask for a shorter one.",
  },
  {
    field: "management.timeoutSeconds",
    type: "integer 2–86400, > heartbeatSeconds",
    default: String(CONFIG_DEFAULTS.timeoutSeconds),
    description: "No answer for this long: the connection is dead, reconnect.",
  },
  {
    field: "hypervisor.kind",
    type: "`kvm` | `xenserver`",
    default: CONFIG_DEFAULTS.hypervisorKind,
    description: "Which hypervisor backend runs on this host.",
  },
  { field: "hypervisor.uri", type: "libvirt URI", default: CONFIG_DEFAULTS.libvirtUri, description: "libvirt connection (kvm only)." },
  {
    field: "hypervisor.domainType",
    type: "`kvm` | `qemu`",
    default: CONFIG_DEFAULTS.domainType,
    description: "libvirt domain type of deployed VMs; `qemu` is software emulation for hosts without /dev/kvm (labs, CI).",
  },
  {
    field: "hypervisor.xapi.url",
    type: "`https://` or `http://` URL",
    default: "required for xenserver",
    description: "XAPI endpoint (xenserver only).",
  },
  { field: "hypervisor.xapi.username", type: "string", default: CONFIG_DEFAULTS.xapiUsername, description: "XAPI user." },
  {
    field: "hypervisor.xapi.passwordFile",
    type: "absolute path",
    default: "required for xenserver",
    description: "File holding the XAPI password.",
  },
  {
    field: "hypervisor.xapi.allowSelfSigned",
    type: "boolean",
    default: String(CONFIG_DEFAULTS.allowSelfSigned),
    description: "Accept XAPI's self-signed certificate.",
  },
  {
    field: "network.uplink",
    type: "interface name",
    default: "none",
    description: "Uplink that managed bridges (and VLAN sub-interfaces) attach to.",
  },
  { field: "network.mtu", type: "integer 1280–65535", default: "the uplink's", description: "MTU of managed bridges." },
  {
    field: "firewall.backend",
    type: "`auto` | `nft` | `xtables`",
    default: CONFIG_DEFAULTS.firewallBackend,
    description: "`auto` picks nftables where the bridge family works, else xtables.",
  },
  { field: "stateDir", type: "absolute path", default: CONFIG_DEFAULTS.stateDir, description: "Where the desired state is persisted." },
  {
    field: "logLevel",
    type: "`fatal` | `error` | `warn` | `info` | `debug` | `trace`",
    default: CONFIG_DEFAULTS.logLevel,
    description: "pino log level.",
  },
  {
    field: "metrics.listen",
    type: "`host:port` (`[v6]:port`)",
    default: "disabled",
    description: "Prometheus metrics endpoint, e.g. `127.0.0.1:9464`.",
  },
  {
    field: "netns",
    type: "network namespace name",
    default: "none",
    description: "Run the host side inside this named namespace (lab and tests).",
  },
  {
    field: "reconcileSeconds",
    type: "integer 1–86400",
    default: String(CONFIG_DEFAULTS.reconcileSeconds),
    description: "Interval of the safety-net reconcile (restores rules removed by hand); events act at once.",
  },
];

/** The Markdown table of CONFIG_REFERENCE, as docs/operators.md carries it. */
export function configReferenceMarkdown(): string {
  const rows = CONFIG_REFERENCE.map((row) => `| \`${row.field}\` | ${row.type} | ${row.default} | ${row.description} |`);
  return ["| field | type | default | meaning |", "|---|---|---|---|", ...rows].join("\n");
}

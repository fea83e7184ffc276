/**
 * The message schemas of the v6agent management protocol: the one source of truth for runtime
 * validation, TypeScript types (`Static<>`) and the published `docs/protocol.schema.json`.
 *
 * Why TypeBox rather than zod: a TypeBox schema *is* a JSON Schema object, so the published file
 * is exactly what the agent validates against (no lossy conversion step), and its TypeCompiler
 * turns each schema into a specialised checker that keeps validation off the no-op latency
 * budget (bench/channel.ts).
 *
 * Objects are closed (`additionalProperties: false`): an unknown field is refused with -32602
 * naming it, so a typo in a management server never silently does nothing. Patterns catch the
 * shape of MACs and prefixes; the semantic checks (unicast MAC, exactly /64, address inside the
 * network) are done by src/addressing/ in ./params.ts, whose messages name what is wrong.
 */
import { type Static, type TSchema, Type } from "@sinclair/typebox";

const closed = { additionalProperties: false } as const;

import { IPV4_ADDRESS_PATTERN, IPV6_ADDRESS_PATTERN, IPV6_PREFIX_PATTERN, MAC_PATTERN } from "./patterns.js";

export { IPV4_ADDRESS_PATTERN, IPV6_ADDRESS_PATTERN, IPV6_PREFIX_PATTERN, MAC_PATTERN };

export const Mac = Type.String({ pattern: MAC_PATTERN, description: "a MAC address such as 52:54:00:12:34:56" });
export const Ipv6Prefix = Type.String({ pattern: IPV6_PREFIX_PATTERN, description: "an IPv6 /64 such as 2001:db8:1:1::/64" });
export const Ipv6Address = Type.String({ pattern: IPV6_ADDRESS_PATTERN, description: "an IPv6 address such as 2001:db8:1:1::10" });
export const Ipv4Address = Type.String({ pattern: IPV4_ADDRESS_PATTERN, description: "an IPv4 address such as 192.0.2.10" });
export const Identifier = Type.String({ minLength: 1, maxLength: 128, description: "an opaque identifier (1 to 128 characters)" });
export const Uuid = Type.String({
  pattern: "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$",
  description: "a UUID such as 6f1c2a3e-8d4b-4c1e-9a7f-0b1c2d3e4f50",
});
export const Path = Type.String({ minLength: 1, maxLength: 4096, pattern: "^/", description: "an absolute path" });

// ---------------------------------------------------------------- shared records

export const VifState = Type.Union(
  [Type.Literal("protected"), Type.Literal("detached"), Type.Literal("unplugged"), Type.Literal("error")],
  {
    description:
      "protected: the NIC's device exists and its port policy is in force; detached: wanted but without a device now (VM stopped, not yet plugged); unplugged: removed (sent once); error: see message",
  },
);

export const ObservedDuid = Type.Object(
  {
    duid: Type.String({
      pattern: "^[0-9a-f]{2}(:[0-9a-f]{2}){2,129}$",
      description: "the DUID as colon hex, type included, e.g. 00:01:00:01:2b:3c:4d:5e:52:54:00:12:34:56",
    }),
    type: Type.Integer({ minimum: 0, maximum: 65535, description: "1 DUID-LLT, 2 DUID-EN, 3 DUID-LL, 4 DUID-UUID" }),
    typeName: Type.String({ maxLength: 32, description: "DUID-LLT, DUID-EN, DUID-LL, DUID-UUID or DUID type <n>" }),
    iaid: Type.Optional(Type.Integer({ minimum: 0, maximum: 4294967295, description: "the IAID of the first IA option" })),
    matchesDuidLL: Type.Boolean({ description: "whether it is this VIF's duidLL, the identity its reservation is keyed by" }),
    sharedWith: Type.Optional(Type.Array(Mac, { maxItems: 64, description: "MACs of other VIFs on this host that send the same DUID" })),
  },
  { ...closed, description: "the DHCPv6 client identifier the guest was last seen sending on this VIF" },
);

export const VifReport = Type.Object(
  {
    vmUuid: Uuid,
    networkId: Type.Optional(Identifier),
    mac: Mac,
    duidLL: Type.String({ pattern: "^00:03:00:01(:[0-9a-f]{2}){6}$", description: "DUID-LL, e.g. 00:03:00:01:52:54:00:12:34:56" }),
    linkLocal: Ipv6Address,
    device: Type.Optional(Type.String({ minLength: 1, maxLength: 15 })),
    bridge: Type.Optional(Type.String({ minLength: 1, maxLength: 15 })),
    state: VifState,
    ipv6: Type.Optional(Type.Array(Ipv6Address, { maxItems: 64 })),
    ipv4: Type.Optional(Type.Array(Ipv4Address, { maxItems: 64 })),
    message: Type.Optional(Type.String({ maxLength: 1024 })),
    observedDuid: Type.Optional(ObservedDuid),
  },
  closed,
);

export const VmState = Type.Union([
  Type.Literal("running"),
  Type.Literal("paused"),
  Type.Literal("stopped"),
  Type.Literal("crashed"),
  Type.Literal("unknown"),
]);

// ---------------------------------------------------------------- server → agent

export const NetworkEnsureParams = Type.Object(
  {
    networkId: Identifier,
    prefix: Ipv6Prefix,
    gateway: Type.Optional(Ipv6Address),
    vlan: Type.Optional(Type.Integer({ minimum: 1, maximum: 4094 })),
    mtu: Type.Optional(Type.Integer({ minimum: 1280, maximum: 65535, description: "IPv6 needs at least 1280" })),
    router: Type.Optional(
      Type.Object(
        {
          mac: Mac,
          linkLocal: Ipv6Address,
          requireManagedFlag: Type.Optional(Type.Boolean({ description: "RAs from the uplink must carry the M flag (default true)" })),
          onlyNetworkPrefix: Type.Optional(
            Type.Boolean({ description: "RAs from the uplink may announce only the network's /64 (default true)" }),
          ),
        },
        {
          ...closed,
          description:
            "The network's router: RAs and DHCPv6 server messages entering from the uplink are then accepted only from this MAC and link-local; without it, nothing from the uplink is filtered",
        },
      ),
    ),
  },
  closed,
);
export const NetworkEnsureResult = Type.Object({ networkId: Identifier, bridge: Type.String({ minLength: 1, maxLength: 15 }) }, closed);

export const NetworkRemoveParams = Type.Object({ networkId: Identifier }, closed);
export const NetworkRemoveResult = Type.Object({ networkId: Identifier, removed: Type.Boolean() }, closed);

const NicAddresses = {
  ipv6: Type.Optional(Type.Array(Ipv6Address, { maxItems: 64 })),
  ipv4: Type.Optional(Type.Array(Ipv4Address, { maxItems: 64 })),
};

export const NicPlugParams = Type.Object(
  {
    vmUuid: Uuid,
    networkId: Identifier,
    mac: Mac,
    model: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
    ...NicAddresses,
  },
  closed,
);
export const NicPlugResult = VifReport;

export const NicUnplugParams = Type.Object({ vmUuid: Uuid, mac: Mac }, closed);
export const NicUnplugResult = Type.Object({ vmUuid: Uuid, mac: Mac, unplugged: Type.Boolean() }, closed);

export const BootSpec = Type.Union([
  Type.Object(
    { kind: Type.Literal("kernel"), kernel: Path, initrd: Type.Optional(Path), cmdline: Type.Optional(Type.String({ maxLength: 4096 })) },
    closed,
  ),
  Type.Object({ kind: Type.Literal("disk"), path: Path }, closed),
]);

export const VmNicSpec = Type.Object(
  { networkId: Identifier, mac: Mac, model: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })), ...NicAddresses },
  closed,
);

export const VmDeployParams = Type.Object(
  {
    uuid: Uuid,
    name: Type.String({ minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9][A-Za-z0-9._-]*$" }),
    memoryMiB: Type.Integer({ minimum: 16, maximum: 4194304 }),
    vcpus: Type.Integer({ minimum: 1, maximum: 1024 }),
    boot: BootSpec,
    nics: Type.Array(VmNicSpec, { maxItems: 32 }),
  },
  closed,
);
export const VmDeployResult = Type.Object({ uuid: Uuid, vifs: Type.Array(VifReport) }, closed);

export const VmStopParams = Type.Object({ uuid: Uuid, force: Type.Optional(Type.Boolean()) }, closed);
export const VmStopResult = Type.Object({ uuid: Uuid, state: VmState }, closed);

export const VmListParams = Type.Object({}, closed);
export const VmListResult = Type.Object(
  {
    vms: Type.Array(
      Type.Object(
        {
          uuid: Uuid,
          name: Type.String(),
          state: VmState,
          nics: Type.Array(
            Type.Object(
              {
                mac: Mac,
                networkId: Type.Optional(Identifier),
                device: Type.Optional(Type.String()),
                bridge: Type.Optional(Type.String()),
                model: Type.Optional(Type.String()),
              },
              closed,
            ),
          ),
        },
        closed,
      ),
    ),
  },
  closed,
);

export const StateSyncParams = Type.Object(
  {
    networks: Type.Array(NetworkEnsureParams, { maxItems: 4096 }),
    vms: Type.Array(
      Type.Object(
        {
          uuid: Uuid,
          nics: Type.Array(Type.Object({ networkId: Identifier, mac: Mac, ...NicAddresses }, closed), { maxItems: 32 }),
        },
        closed,
      ),
      { maxItems: 65536 },
    ),
  },
  closed,
);
export const StateSyncResult = Type.Object(
  {
    /** What the reconcile changed, as human-readable lines ("created bridge v6br-1a2b"). */
    changes: Type.Array(Type.String()),
    vifs: Type.Array(VifReport),
  },
  { additionalProperties: true },
);

export const HostDiagnoseParams = Type.Object({}, closed);
/** Deliberately loose: diagnostics grow with every new check. */
export const HostDiagnoseResult = Type.Object(
  {
    checks: Type.Array(
      Type.Object(
        {
          name: Type.String(),
          status: Type.Union([Type.Literal("ok"), Type.Literal("warn"), Type.Literal("fail")]),
          message: Type.String(),
          fix: Type.Optional(Type.String()),
        },
        { additionalProperties: true },
      ),
    ),
  },
  { additionalProperties: true },
);

// ---------------------------------------------------------------- agent → server

export const AgentHelloParams = Type.Object(
  {
    hostId: Identifier,
    hostname: Type.String({ minLength: 1, maxLength: 253 }),
    hypervisor: Type.Union([Type.Literal("kvm"), Type.Literal("xenserver")]),
    versions: Type.Object({ agent: Type.String(), hypervisor: Type.String() }, { additionalProperties: Type.String() }),
    capabilities: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 256 }),
    resumeToken: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    /** The agent's command journal was damaged: it refuses ids it cannot prove new until an answer acknowledges this. */
    journalDamaged: Type.Optional(
      Type.Literal(true, {
        description:
          "the agent's command journal was damaged, so it cannot tell which command ids it ran; it answers -32011 to every id it does not know until a hello answer carries journalDamageAcknowledged",
      }),
    ),
    stateProblem: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 1024,
        description:
          "present when the agent could not read its desired state (and had no good copy): it leaves the live rules as they are and refuses changes until state.sync",
      }),
    ),
    inventory: Type.Object(
      {
        networks: Type.Array(Type.Object({ networkId: Identifier, prefix: Ipv6Prefix, bridge: Type.Optional(Type.String()) }, closed)),
        vifs: Type.Array(VifReport),
      },
      closed,
    ),
  },
  closed,
);
export const AgentHelloResult = Type.Object(
  {
    /** Present this on the next connection so the server knows it is the same agent session. */
    resumeToken: Type.String({ minLength: 1, maxLength: 256 }),
    /** How often the agent should send agent.heartbeat. */
    heartbeatIntervalMs: Type.Integer({ minimum: 100 }),
    /** True when the server recognised the resume token. */
    resumed: Type.Boolean(),
    /** Answer to journalDamaged: the server dropped every call it had pending for this agent and sends only ids it never sent it. */
    journalDamageAcknowledged: Type.Optional(
      Type.Literal(true, {
        description:
          "the server has given up every command it had sent this agent before this hello (none will be sent again) and sends only new ids from now on",
      }),
    ),
  },
  closed,
);

export const AgentHeartbeatParams = Type.Object(
  {
    vms: Type.Array(Type.Object({ uuid: Uuid, state: VmState }, closed)),
    vifs: Type.Array(Type.Object({ mac: Mac, device: Type.Optional(Type.String()), state: VifState }, closed)),
  },
  closed,
);
export const AgentHeartbeatResult = Type.Object({ time: Type.String() }, closed);

export const AgentPingParams = Type.Object({}, closed);
export const AgentPingResult = Type.Object({ time: Type.String() }, closed);

export const VifReportParams = VifReport;
export const VifReportResult = Type.Object({}, closed);

// ---------------------------------------------------------------- envelopes (JSON-RPC 2.0)

export const RequestId = Type.Union([Type.String({ minLength: 1, maxLength: 128 }), Type.Integer()]);

export const RpcRequest = Type.Object(
  {
    jsonrpc: Type.Literal("2.0"),
    id: Type.Optional(RequestId),
    method: Type.String({ minLength: 1, maxLength: 64 }),
    params: Type.Optional(Type.Object({}, { additionalProperties: true })),
  },
  closed,
);

export const RpcError = Type.Object(
  {
    code: Type.Integer(),
    message: Type.String(),
    data: Type.Optional(
      Type.Object(
        {
          /** The V6Error code (src/errors.ts), e.g. "invalid_argument". */
          reason: Type.String(),
          /** The offending field as a path from the message root, e.g. "params.nics[0].mac". */
          field: Type.Optional(Type.String()),
        },
        { additionalProperties: true },
      ),
    ),
  },
  closed,
);

export const RpcResponse = Type.Union([
  Type.Object({ jsonrpc: Type.Literal("2.0"), id: RequestId, result: Type.Unknown() }, closed),
  Type.Object({ jsonrpc: Type.Literal("2.0"), id: Type.Union([RequestId, Type.Null()]), error: RpcError }, closed),
]);

export type VifReport = Static<typeof VifReport>;
export type ObservedDuid = Static<typeof ObservedDuid>;
export type VifState = Static<typeof VifState>;
export type RequestId = Static<typeof RequestId>;
export type RpcErrorObject = Static<typeof RpcError>;
export type NetworkEnsureParams = Static<typeof NetworkEnsureParams>;
export type AgentHelloParams = Static<typeof AgentHelloParams>;
export type AgentHelloResult = Static<typeof AgentHelloResult>;
export type AgentHeartbeatParams = Static<typeof AgentHeartbeatParams>;
export type StateSyncParams = Static<typeof StateSyncParams>;
export type HostDiagnoseResult = Static<typeof HostDiagnoseResult>;
export type { Static, TSchema };

/**
 * The typed surface of native/ (the libvirt addon, built by binding.gyp). Only
 * src/hypervisor/kvm/libvirt.ts loads it; everything else goes through that module.
 *
 * Every method that talks to libvirt returns a promise and runs on libuv's thread pool.
 * Domains are addressed by UUID. Rejections are `LibvirtErrorShape`s.
 */

/** A libvirt error as thrown by the addon: virErrorNumber `code`, virErrorDomain `domain`. */
export interface LibvirtErrorShape extends Error {
  name: "LibvirtError";
  code: number;
  domain: number;
}

export interface DomainSummary {
  name: string;
  uuid: string;
  /** The running domain's id; -1 when inactive. */
  id: number;
  /** virDomainState: 0 nostate, 1 running, 2 blocked, 3 paused, 4 shutdown, 5 shutoff, 6 crashed, 7 pmsuspended. */
  state: number;
  /** The state's reason code (virDomain*Reason for that state). */
  reason: number;
}

export interface HostInfo {
  hostname: string;
  /** virConnectGetType: "QEMU", "TEST", ... */
  type: string;
  uri: string;
  /** major * 1,000,000 + minor * 1,000 + release */
  hypervisorVersion: number;
  libraryVersion: number;
}

export type NativeEvent =
  /** virDomainEventType `event` (0 defined, 1 undefined, 2 started, 3 suspended, 4 resumed, 5 stopped, 6 shutdown, 7 pmsuspended, 8 crashed) and its `detail`. */
  | { kind: "lifecycle"; uuid: string; name: string; event: number; detail: number }
  | { kind: "device-added"; uuid: string; name: string; alias: string }
  | { kind: "device-removed"; uuid: string; name: string; alias: string }
  /** virConnectCloseReason: 0 error, 1 EOF, 2 keepalive, 3 client. */
  | { kind: "closed"; reason: number };

export interface Connection {
  /** Deregisters events and closes; later calls throw code 6 (VIR_ERR_INVALID_CONN). Idempotent. */
  close(): Promise<void>;
  /** Whether the connection still works (no daemon round trip). */
  isAlive(): boolean;
  host(): Promise<HostInfo>;
  listDomains(): Promise<DomainSummary[]>;
  lookupDomain(uuid: string): Promise<DomainSummary>;
  /** virDomainGetXMLDesc flags: 1 secure, 2 inactive, 4 update-cpu, 8 migratable. */
  domainXml(uuid: string, flags?: number): Promise<string>;
  /** Defines (or redefines) a persistent domain. */
  defineDomain(xml: string): Promise<DomainSummary>;
  createDomain(uuid: string): Promise<void>;
  destroyDomain(uuid: string): Promise<void>;
  shutdownDomain(uuid: string): Promise<void>;
  /** virDomainUndefineFlagsValues, e.g. 1 managed-save, 2 snapshots-metadata, 4 nvram. */
  undefineDomain(uuid: string, flags?: number): Promise<void>;
  /** virDomainDeviceModifyFlags: 1 live, 2 config (0 current). */
  attachDevice(uuid: string, xml: string, flags?: number): Promise<void>;
  detachDevice(uuid: string, xml: string, flags?: number): Promise<void>;
}

export interface Addon {
  /** Opens a connection; `listener` receives its domain events and its closed callback. */
  open(uri: string, listener: (event: NativeEvent) => void): Promise<Connection>;
  /** The libvirt library version the addon runs against. */
  libraryVersion(): number;
  /** Connections' event sinks not yet freed: 0 once every opened connection is closed (leak tests). */
  liveEventSinks(): number;
}

/** Options of one libnftables call (native/src/nftables.cc). */
export interface NftRunOptions {
  /** Path of the network namespace to work in (e.g. /run/netns/<name>); default: the process's. */
  netns?: string;
  /** Output as JSON (`nft -j`). */
  json?: boolean;
  /** Check only, commit nothing (`nft -c`). */
  dryRun?: boolean;
}

/** A failed call: nft's own error text, exactly as `nft` would print it. */
export interface NftErrorShape extends Error {
  name: "NftError";
  stderr: string;
}

/**
 * The libnftables addon: each call is one `nft -f -` worth of script, one atomic transaction.
 * One context (one netlink socket) per namespace is kept open between calls and closed when
 * idle, when its namespace is gone, or on `release`.
 */
export interface NftAddon {
  run(script: string, options?: NftRunOptions): Promise<{ output: string; error: string }>;
  /** The ruleset generation (NFT_MSG_GETGEN): changes with every committed transaction there. */
  generation(options?: { netns?: string }): Promise<number>;
  /** Closes the kept sockets of one namespace (`{}`: the process's own), or of all without options. */
  release(options?: { netns?: string }): Promise<void>;
  /** Namespaces whose sockets are kept open now. */
  keptNamespaces(): number;
}

/** Options of an NFLOG reader (native/src/nflog.cc). */
export interface NflogReaderOptions {
  /** The NFLOG group to bind (nft `log group N`, ip6tables `--nflog-group N`), 0..65535. */
  group: number;
  /** Path of the network namespace whose netfilter logs to read; default: the process's. */
  netns?: string;
  /** Bytes of each packet copied; default 2048. */
  copyRange?: number;
  /** Socket receive buffer in bytes; default 1 MiB. */
  receiveBuffer?: number;
}

/** One logged packet, as nfnetlink_log hands it over. */
export interface NflogPacket {
  group: number;
  /** NFPROTO_* of the hook that logged it (7 bridge, 10 IPv6). */
  family: number;
  /** The frame's EtherType (0x86dd IPv6). */
  hwProtocol?: number;
  hook?: number;
  /** Input device: on a bridge the bridge itself; the port is `physindev`. */
  indev?: number;
  indevName?: string;
  physindev?: number;
  physindevName?: string;
  /** The frame's source MAC, colon hex. */
  hwaddr?: string;
  prefix?: string;
  /** The packet from its network header on (IPv6), at most copyRange bytes. */
  payload: Buffer;
}

export interface NflogReaderStats {
  /** Packet messages read. */
  received: number;
  /** Messages without a payload or with a broken attribute (none from a sane kernel). */
  malformed: number;
  /** Times the kernel dropped copies because the socket was full (ENOBUFS). */
  dropped: number;
}

/** Reads one NFLOG group on Node's own loop (no thread); `onPackets` gets each batch. Throws NflogError. */
export interface NflogReader {
  /** Stops reading and unbinds the group. Idempotent. */
  close(): void;
  stats(): NflogReaderStats;
}

export interface NflogAddon {
  NflogReader: new (options: NflogReaderOptions, onPackets: (packets: NflogPacket[]) => void) => NflogReader;
}

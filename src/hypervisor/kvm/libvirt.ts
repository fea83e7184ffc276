import type { Addon, Connection, DomainSummary, HostInfo, LibvirtErrorShape, NativeEvent } from "../../../native/index.js";
import { type ErrorCode, V6Error } from "../../errors.js";
import { loadNativeAddon } from "../../native.js";

/**
 * The thin TypeScript side of native/ (design sections 5 and 7): loads the addon, and turns its
 * rejections into `LibvirtError`s (a V6Error with libvirt's own code and domain kept), so the
 * rest of the agent sees one error family. All logic lives above this file.
 */

export type { DomainSummary, HostInfo, NativeEvent };

/** The virErrorNumber values the agent reacts to (libvirt/virterror.h). */
export const VirErrorCode = {
  internal: 1,
  noSupport: 3,
  noConnect: 5,
  invalidConnection: 6,
  invalidArgument: 8,
  operationFailed: 9,
  xmlError: 27,
  xmlDetail: 35,
  domainExists: 28,
  systemError: 38,
  rpc: 39,
  noDomain: 42,
  operationInvalid: 55,
  configUnsupported: 67,
  operationTimeout: 68,
  operationUnsupported: 84,
} as const;

/** virDomainState */
export const DomainState = {
  noState: 0,
  running: 1,
  blocked: 2,
  paused: 3,
  shutdown: 4,
  shutoff: 5,
  crashed: 6,
  pmSuspended: 7,
} as const;

/** virDomainDeviceModifyFlags */
export const DeviceFlags = { current: 0, live: 1, config: 2 } as const;

/** virDomainXMLFlags */
export const XmlFlags = { secure: 1, inactive: 2 } as const;

/** virDomainUndefineFlagsValues the agent uses: drop managed-save images and snapshot metadata. */
export const UNDEFINE_FLAGS = 1 | 2;

export class LibvirtError extends V6Error {
  readonly libvirtCode: number;
  readonly libvirtDomain: number;

  constructor(code: ErrorCode, message: string, libvirtCode: number, libvirtDomain: number, cause: unknown) {
    super(code, message, { cause });
    this.name = "LibvirtError";
    this.libvirtCode = libvirtCode;
    this.libvirtDomain = libvirtDomain;
  }
}

function isNativeError(error: unknown): error is LibvirtErrorShape {
  return error instanceof Error && error.name === "LibvirtError" && typeof (error as LibvirtErrorShape).code === "number";
}

function errorCodeFor(libvirtCode: number): ErrorCode {
  switch (libvirtCode) {
    case VirErrorCode.noDomain:
      return "not_found";
    case VirErrorCode.noSupport:
    case VirErrorCode.operationUnsupported:
      return "not_implemented";
    case VirErrorCode.noConnect:
    case VirErrorCode.invalidConnection:
    case VirErrorCode.systemError:
    case VirErrorCode.rpc:
      return "unavailable";
    case VirErrorCode.invalidArgument:
    case VirErrorCode.xmlError:
    case VirErrorCode.xmlDetail:
    case VirErrorCode.configUnsupported:
      return "invalid_argument";
    case VirErrorCode.domainExists:
      return "conflict";
    case VirErrorCode.operationTimeout:
      return "timeout";
    default:
      return "hypervisor_failure";
  }
}

/** Wraps an addon rejection; `what` names the operation (and the domain) for the message. */
export function toLibvirtError(error: unknown, what: string): unknown {
  if (!isNativeError(error)) return error;
  return new LibvirtError(errorCodeFor(error.code), `${what}: ${error.message}`, error.code, error.domain, error);
}

async function call<T>(what: string, promise: () => Promise<T>): Promise<T> {
  try {
    return await promise();
  } catch (error) {
    throw toLibvirtError(error, what);
  }
}

function loadAddon(): Addon {
  return loadNativeAddon<Addon>("v6agent_libvirt");
}

/** The libvirt library version the addon runs against (major * 1,000,000 + minor * 1,000 + release). */
export function libvirtLibraryVersion(): number {
  return loadAddon().libraryVersion();
}

/** One open libvirt connection. Every method runs off the JavaScript thread. */
export class LibvirtConnection {
  private constructor(
    private readonly native: Connection,
    readonly uri: string,
  ) {}

  /** Opens `uri`; `listener` gets domain events and the connection-closed callback. */
  static async open(uri: string, listener: (event: NativeEvent) => void = () => {}): Promise<LibvirtConnection> {
    const native = await call(`libvirt: opening ${uri}`, () => loadAddon().open(uri, listener));
    return new LibvirtConnection(native, uri);
  }

  close(): Promise<void> {
    return call("libvirt: closing the connection", () => this.native.close());
  }

  isAlive(): boolean {
    return this.native.isAlive();
  }

  host(): Promise<HostInfo> {
    return call("libvirt: reading host facts", () => this.native.host());
  }

  listDomains(): Promise<DomainSummary[]> {
    return call("libvirt: listing domains", () => this.native.listDomains());
  }

  lookupDomain(uuid: string): Promise<DomainSummary> {
    return call(`libvirt: domain ${uuid}`, () => this.native.lookupDomain(uuid));
  }

  domainXml(uuid: string, flags = 0): Promise<string> {
    return call(`libvirt: XML of domain ${uuid}`, () => this.native.domainXml(uuid, flags));
  }

  defineDomain(xml: string): Promise<DomainSummary> {
    return call("libvirt: defining a domain", () => this.native.defineDomain(xml));
  }

  createDomain(uuid: string): Promise<void> {
    return call(`libvirt: starting domain ${uuid}`, () => this.native.createDomain(uuid));
  }

  destroyDomain(uuid: string): Promise<void> {
    return call(`libvirt: powering off domain ${uuid}`, () => this.native.destroyDomain(uuid));
  }

  shutdownDomain(uuid: string): Promise<void> {
    return call(`libvirt: shutting down domain ${uuid}`, () => this.native.shutdownDomain(uuid));
  }

  undefineDomain(uuid: string, flags = UNDEFINE_FLAGS): Promise<void> {
    return call(`libvirt: undefining domain ${uuid}`, () => this.native.undefineDomain(uuid, flags));
  }

  attachDevice(uuid: string, xml: string, flags: number): Promise<void> {
    return call(`libvirt: attaching a device to domain ${uuid}`, () => this.native.attachDevice(uuid, xml, flags));
  }

  detachDevice(uuid: string, xml: string, flags: number): Promise<void> {
    return call(`libvirt: detaching a device from domain ${uuid}`, () => this.native.detachDevice(uuid, xml, flags));
  }
}

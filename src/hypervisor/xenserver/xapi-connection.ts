import { EventEmitter } from "node:events";
import { createClient, type Xapi, type XapiObject } from "xen-api";
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from "../../backoff.js";
import { InvalidArgumentError, V6Error } from "../../errors.js";
import type { Logger } from "../../log.js";

export interface XapiCredentials {
  user: string;
  password: string;
}

export interface XapiConnectionOptions {
  /** `https://<host>` (or `http://` for a local simulator). */
  url: string;
  /** A user and password, or an existing session reference (not renewable: a dead one is fatal). */
  auth: XapiCredentials | { sessionId: string };
  /** Accept a self-signed XAPI certificate (XenServer's default); off unless configured. */
  allowSelfSigned?: boolean;
  /** Reconnect backoff (default 200 ms doubling to 30 s, jittered). */
  backoff?: Partial<BackoffOptions>;
  /** Classes whose events fill the object cache. */
  watch?: readonly string[];
  /** The fields the cache keeps, by class (a class not listed keeps every field). */
  cachedFields?: Readonly<Record<string, readonly string[]>>;
  logger?: Logger;
}

/** An XAPI error (`code`, `params`) surfaced through our error family. */
export class XapiCallError extends V6Error {
  readonly xapiCode: string;
  readonly xapiParams: readonly string[];
  readonly method: string;

  constructor(method: string, xapiCode: string, xapiParams: readonly string[], cause: unknown) {
    super("hypervisor_failure", `XAPI ${method} failed: ${xapiCode}${xapiParams.length > 0 ? `(${xapiParams.join(", ")})` : ""}`, {
      cause,
    });
    this.name = "XapiCallError";
    this.xapiCode = xapiCode;
    this.xapiParams = xapiParams;
    this.method = method;
  }
}

/**
 * One XAPI session through the `xen-api` client (JSON-RPC transport) plus what the client does
 * not do by itself: when the session dies for good (the client gives up and disconnects, or the
 * host is unreachable) it logs in again with exponential backoff and jitter, reports
 * `connection-lost`/`connection-restored`, and an operation that failed with SESSION_INVALID is
 * retried once on the new session.
 */
export class XapiConnection extends EventEmitter<{ "connection-lost": [reason: string]; "connection-restored": []; objects: [] }> {
  readonly client: Xapi;
  private closing = false;
  private reconnecting: Promise<void> | undefined;
  private readonly backoff: BackoffOptions;
  private readonly log: Logger | undefined;

  constructor(private readonly options: XapiConnectionOptions) {
    super();
    if (!/^https?:\/\/[^\s/]+/.test(options.url)) {
      throw new InvalidArgumentError("url", `${JSON.stringify(options.url)} is not an http(s) URL of a XAPI host`);
    }
    if ("user" in options.auth && (options.auth.user === "" || typeof options.auth.password !== "string")) {
      throw new InvalidArgumentError("auth", "needs a user and a password, or a sessionId");
    }
    this.backoff = { ...DEFAULT_BACKOFF, initialMs: 200, ...options.backoff };
    this.log = options.logger;
    this.client = createClient({
      url: options.url,
      auth: options.auth,
      transport: "json-rpc",
      allowUnauthorized: options.allowSelfSigned ?? false,
      watchEvents: options.watch === undefined ? false : [...options.watch],
      // The client's own pause after a failed event.from; ours is the backoff below.
      eventPollDelay: 1_000,
      debounce: 50,
    });
    if (options.cachedFields !== undefined) keepOnlyFields(this.client, options.cachedFields);
    this.client.on("disconnected", () => {
      if (!this.closing && this.canLogIn) void this.reconnect("the XAPI session ended");
    });
  }

  async connect(): Promise<void> {
    try {
      await this.client.connect();
    } catch (error) {
      throw toV6Error("session.login_with_password", error);
    }
    if (this.options.watch !== undefined) await this.client.objectsFetched;
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.client.disconnect();
  }

  /** A given session reference cannot be renewed; only credentials can log in again. */
  private get canLogIn(): boolean {
    return "user" in this.options.auth;
  }

  get connected(): boolean {
    return this.client.status === "connected";
  }

  /**
   * Calls an XAPI method with the session prepended. SESSION_INVALID that survives the client's
   * own re-login means the session is gone: reconnect (with backoff) and retry once.
   */
  async call<T>(method: string, ...args: unknown[]): Promise<T> {
    return this.withSession(method, () => this.client.call<T>(method, ...args));
  }

  /** `Async.<method>`: a task, watched through the event cache until it settles. */
  async callAsync<T>(method: string, ...args: unknown[]): Promise<T> {
    return this.withSession(method, () => this.client.callAsync<T>(method, ...args));
  }

  /** Objects of one class from the event-fed cache. */
  cached<T>(type: string): (T & XapiObject)[] {
    return Object.values(this.client.objects.all).filter((object) => object.$type === type) as (T & XapiObject)[];
  }

  cachedByRef<T>(ref: string): (T & XapiObject) | undefined {
    return this.client.getObjectByRef<(T & XapiObject) | undefined>(ref, undefined);
  }

  private async withSession<T>(method: string, operation: () => Promise<T>): Promise<T> {
    if (this.reconnecting !== undefined) await this.reconnecting;
    try {
      return await operation();
    } catch (error) {
      // Safe to repeat: XAPI refused the call for its session (SESSION_INVALID), or the call
      // never ran because the client's own re-login failed.
      const sessionDead = errorCode(error) === "SESSION_INVALID" || failedMethod(error) === "session.login_with_password";
      if (!sessionDead || this.closing) throw toV6Error(method, error);
      if (!this.canLogIn) {
        this.emit("connection-lost", "the XAPI session expired");
        throw new V6Error(
          "unavailable",
          `XAPI ${method}: the session v6agent was given has expired, and without credentials it cannot log in again`,
          {
            field: "auth",
            cause: error,
          },
        );
      }
      this.log?.warn({ method }, "XAPI session lost during a call; logging in again and retrying once");
      await this.reconnect(`${method}: the XAPI session is no longer valid`);
      try {
        return await operation();
      } catch (retryError) {
        throw toV6Error(method, retryError);
      }
    }
  }

  /** One reconnect loop at a time; resolves when a new session is open (or on close). */
  private reconnect(reason: string): Promise<void> {
    if (this.reconnecting !== undefined) return this.reconnecting;
    let settle: () => void = () => {};
    // Set before anything can emit "disconnected" again, so the listener joins this loop.
    this.reconnecting = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const done = this.reconnecting;
    this.emit("connection-lost", reason);
    this.log?.warn({ reason }, "XAPI connection lost");
    void (async () => {
      for (let attempt = 1; !this.closing; attempt++) {
        try {
          if (this.client.status === "connected") await this.client.disconnect();
          if (this.client.status === "disconnected") await this.client.connect();
          this.log?.info({ attempt }, "XAPI session restored");
          this.reconnecting = undefined;
          settle();
          this.emit("connection-restored");
          return;
        } catch (error) {
          // Jitter keeps a pool's agents from logging in together after a xapi restart.
          const delay = backoffDelay(attempt - 1, this.backoff);
          this.log?.warn({ attempt, error: String(error), delayMs: delay }, "XAPI login failed; retrying");
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
      }
      this.reconnecting = undefined;
      settle();
    })();
    return done;
  }
}

/**
 * Makes the client's object cache keep only `fields` of each record. xen-api has no option for
 * it, so this wraps the one method through which every record enters the cache (the initial
 * `get_all_records` and every `event.from` snapshot); a xen-api without that method fails here,
 * at construction, rather than silently caching whole records again.
 */
function keepOnlyFields(client: Xapi, fields: Readonly<Record<string, readonly string[]>>): void {
  type AddRecord = (this: Xapi, type: string, ref: string, record: Record<string, unknown>) => void;
  const internals = client as unknown as { _addRecordToCache?: AddRecord };
  const add = internals._addRecordToCache;
  if (typeof add !== "function") {
    throw new V6Error("internal", "this xen-api version has no Xapi#_addRecordToCache: update cachedFields in xapi-connection.ts");
  }
  internals._addRecordToCache = function (type, ref, record) {
    const keep = fields[type];
    if (keep === undefined) return add.call(this, type, ref, record);
    const trimmed: Record<string, unknown> = {};
    for (const field of keep) if (field in record) trimmed[field] = record[field];
    return add.call(this, type, ref, trimmed);
  };
}

/** The xen-api client tags every failed call with `error.call.method`. */
function failedMethod(error: unknown): string | undefined {
  if (error === null || typeof error !== "object" || !("call" in error)) return undefined;
  const call = (error as { call?: { method?: unknown } }).call;
  return typeof call?.method === "string" ? call.method : undefined;
}

export function errorCode(error: unknown): string | undefined {
  if (error !== null && typeof error === "object" && "code" in error && typeof error.code === "string") return error.code;
  return undefined;
}

function toV6Error(method: string, error: unknown): V6Error {
  if (error instanceof V6Error) return error;
  const code = errorCode(error);
  // Only XAPI's own errors carry `params` (the client's XapiError); TLS and socket errors have
  // upper-case codes too, but they mean XAPI could not be reached.
  const params =
    error !== null && typeof error === "object" && "params" in error && Array.isArray(error.params) ? error.params.map(String) : undefined;
  if (code !== undefined && params !== undefined) return new XapiCallError(method, code, params, error);
  const message = error instanceof Error ? error.message : String(error);
  const hint =
    code !== undefined && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)
      ? " (XAPI's certificate is not trusted; set allowSelfSigned only for a host you know)"
      : "";
  return new V6Error("unavailable", `XAPI ${method}: ${message}${hint}`, { cause: error });
}

/**
 * The part of the `xen-api` package (4.x, plain JavaScript) that v6agent uses, typed from its
 * source (index.mjs). Records in the object cache are frozen plain data plus `$ref`/`$type`.
 */
declare module "xen-api" {
  import type { EventEmitter } from "node:events";

  export interface XapiOptions {
    url: string;
    auth?: { user: string; password: string } | { sessionId: string; user?: string; password?: undefined };
    transport?: "auto" | "json-rpc" | "xml-rpc";
    allowUnauthorized?: boolean;
    /** false: do not watch; an array: watch only these classes (as in `system.listMethods`). */
    watchEvents?: boolean | string[];
    /** Milliseconds to wait before retrying `event.from` after an error (default 60 s). */
    eventPollDelay?: number;
    /** Milliseconds between two `event.from` calls (default 200). */
    debounce?: number;
    callTimeout?: number;
    httpInactivityTimeout?: number;
    roCallRetryOptions?: { delay?: number; tries?: number };
    syncStackTraces?: boolean;
  }

  export interface XapiObject {
    readonly $id: string;
    readonly $ref: string;
    readonly $type: string;
    readonly [field: string]: unknown;
  }

  export interface ObjectCollection extends EventEmitter {
    readonly all: Record<string, XapiObject>;
    on(event: "add" | "update" | "remove", listener: (items: Record<string, XapiObject | undefined>) => void): this;
    on(event: "finish", listener: () => void): this;
    removeListener(event: string, listener: (...args: never[]) => void): this;
  }

  export interface XapiErrorLike extends Error {
    code: string;
    params: string[];
  }

  export class Xapi extends EventEmitter {
    constructor(options: XapiOptions);
    readonly status: "connected" | "connecting" | "disconnected";
    readonly sessionId: string;
    readonly objects: ObjectCollection;
    readonly objectsFetched: Promise<void>;
    readonly watchEventsError: unknown;
    connect(): Promise<void>;
    disconnect(): Promise<void>;
    call<T = unknown>(method: string, ...args: unknown[]): Promise<T>;
    callAsync<T = unknown>(method: string, ...args: unknown[]): Promise<T>;
    getAllRecords<T = XapiObject>(type: string): Promise<T[]>;
    getRecord<T = XapiObject>(type: string, ref: string): Promise<T>;
    getRecordByUuid<T = XapiObject>(type: string, uuid: string): Promise<T>;
    getObjectByRef<T = XapiObject>(ref: string, defaultValue?: T): T;
    getObjectByUuid<T = XapiObject>(uuid: string, defaultValue?: T): T;
    barrier(ref?: string): Promise<unknown>;
  }

  export function createClient(options: XapiOptions): Xapi;
}

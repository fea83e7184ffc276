import type { Logger } from "pino";
import { V6Error } from "../errors.js";
import {
  type IncomingRequest,
  type MethodParams,
  parseParams,
  type RequestId,
  RPC_ERRORS,
  type RpcErrorObject,
  rpcError,
  type ServerMethod,
  toRpcError,
} from "../protocol/index.js";
import type { ChannelLimits, CommandHandler } from "./channel-options.js";
import { CommandScheduler } from "./command-scheduler.js";
import { requestDigest } from "./request-digest.js";
import { defaultResourceKey } from "./resource-key.js";
import type { ResultStore, StoredResponse } from "./result-store.js";

export interface CommandRunnerOptions {
  store: ResultStore;
  limits: ChannelLimits;
  handle: CommandHandler;
  resourceKey: ((method: ServerMethod, params: unknown) => string | readonly string[] | undefined) | undefined;
  /** A journalled response, to be delivered (now if connected, else after the next hello). */
  deliver: (id: RequestId, response: StoredResponse) => void;
  /** An answer that is not journalled (the command was not accepted): sent now or never. */
  refuse: (id: RequestId, error: RpcErrorObject) => void;
  log: Logger | undefined;
}

/**
 * The server's commands, from arrival to journalled response: params checked, a known id answered
 * from the journal (or refused when its method or params changed), ids the journal cannot prove
 * new refused after journal damage, then the command queued with per-resource ordering, run
 * under the per-command timeout, and its response journalled before it is delivered.
 */
export class CommandRunner {
  private readonly options: CommandRunnerOptions;
  private readonly scheduler: CommandScheduler;
  private readonly inFlight = new Set<AbortController>();
  private stopping = false;

  constructor(options: CommandRunnerOptions) {
    this.options = options;
    this.scheduler = new CommandScheduler(options.limits.maxConcurrentCommands, options.limits.maxQueuedCommands);
  }

  get running(): number {
    return this.inFlight.size;
  }

  receive(request: IncomingRequest): void {
    const { id } = request;
    const method = request.method as ServerMethod;
    const { store, refuse, deliver, log } = this.options;
    let params: MethodParams<ServerMethod>;
    try {
      params = parseParams(method, request.params);
    } catch (error) {
      refuse(id, toRpcError(error));
      return;
    }
    const digest = requestDigest(method, params);
    const known = store.get(id);
    if (known !== undefined) {
      if (known.digest !== undefined && known.digest !== digest) {
        log?.warn({ cmd: id, method, first: known.method }, "a known command id came with a different request; refused");
        refuse(id, idReused(id, known.method, method));
        return;
      }
      // Seen before: answer from the journal (or, while it runs, let its completion answer).
      if (known.state === "done") deliver(id, known.response as StoredResponse);
      log?.info({ cmd: id, method }, "repeated command id answered from the journal, not executed again");
      return;
    }
    if (this.stopping) {
      refuse(id, rpcError(RPC_ERRORS.unavailable, "the agent is stopping; retry with the same id", undefined, "unavailable"));
      return;
    }
    if (!this.scheduler.hasRoom()) {
      const text = `busy: ${this.options.limits.maxQueuedCommands} commands already queued; retry with the same id`;
      refuse(id, rpcError(RPC_ERRORS.busy, text, undefined, "busy"));
      return;
    }
    try {
      // Journalled on acceptance, before it can run: a duplicate arriving while it waits is recognised.
      store.begin(id, method, digest);
    } catch (error) {
      log?.error({ err: error, cmd: id, method }, "cannot journal a command; refused it");
      refuse(id, toRpcError(error));
      return;
    }
    if (store.damaged) {
      // Not run: with a damaged journal this id may be one that already ran (docs/protocol.md).
      const response = { error: journalDamaged(id) };
      store.complete(id, response);
      log?.warn({ cmd: id, method }, "journal damaged: refused a command id it cannot prove new");
      deliver(id, response);
      return;
    }
    this.scheduler.submit(this.resourceKeys(method, params), () => this.execute(id, method, params));
  }

  /** Stops taking commands; resolves when the running ones finished, or after `graceMs` (then aborts them). */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    let graceTimer: NodeJS.Timeout | undefined;
    const expired = new Promise<"expired">((resolve) => {
      graceTimer = setTimeout(() => resolve("expired"), graceMs);
    });
    if ((await Promise.race([this.scheduler.idle(), expired])) === "expired") {
      // Handlers still running are told to give up; after a restart they answer -32010 interrupted.
      for (const controller of this.inFlight) controller.abort(new V6Error("unavailable", "the agent is stopping"));
      this.options.log?.warn({ running: this.inFlight.size, graceMs }, "stopped with commands still running");
    }
    clearTimeout(graceTimer);
  }

  private resourceKeys(method: ServerMethod, params: unknown): readonly string[] {
    const key = (this.options.resourceKey ?? defaultResourceKey)(method, params);
    if (key === undefined) return [];
    return typeof key === "string" ? [key] : key;
  }

  /** Runs one command; resolves when the handler has settled (the scheduler holds its resources until then). */
  private async execute(id: RequestId, method: ServerMethod, params: MethodParams<ServerMethod>): Promise<void> {
    const { limits, handle, log } = this.options;
    const controller = new AbortController();
    this.inFlight.add(controller);
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), limits.commandTimeoutMs);
    });
    const work = Promise.resolve().then(() => handle(method, params, { id, method, signal: controller.signal }));
    try {
      const outcome = await Promise.race([work.then((result) => ({ result })), timedOut]);
      if (outcome === "timeout") {
        controller.abort(new V6Error("timeout", `${method} exceeded ${limits.commandTimeoutMs} ms`));
        const text = `${method} exceeded the per-command timeout of ${limits.commandTimeoutMs} ms`;
        this.finish(id, { error: rpcError(RPC_ERRORS.timeout, text, undefined, "timeout") });
        // Keep the resource until the handler really stops, so a later command cannot overlap it.
        await work.catch(() => undefined);
        log?.warn({ cmd: id, method, ms: Math.round(performance.now() - started) }, "command finished after its timeout");
        return;
      }
      this.finish(id, { result: outcome.result === undefined ? null : outcome.result });
      log?.debug({ cmd: id, method, ms: Math.round(performance.now() - started) }, "command done");
    } catch (error) {
      this.finish(id, { error: toRpcError(error) });
      log?.info({ cmd: id, method, err: error }, "command failed");
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(controller);
    }
  }

  private finish(id: RequestId, response: StoredResponse): void {
    this.options.store.complete(id, response);
    this.options.deliver(id, response);
  }
}

function idReused(id: RequestId, first: string, now: string): RpcErrorObject {
  const what = first === now ? `${now} with different params` : `${now}, but it was first used for ${first}`;
  return rpcError(
    RPC_ERRORS.conflict,
    `id: ${JSON.stringify(id)} is already used for another request (now ${what}); a replay must repeat the request exactly, a new request needs a new id`,
    "id",
    "conflict",
  );
}

function journalDamaged(id: RequestId): RpcErrorObject {
  return rpcError(
    RPC_ERRORS.journalDamaged,
    `the agent's command journal was damaged, so it cannot prove that id ${JSON.stringify(id)} never ran; not run. Acknowledge the damage in the agent.hello answer (journalDamageAcknowledged), then reissue with a new id or send state.sync`,
    undefined,
    "journal_damaged",
  );
}

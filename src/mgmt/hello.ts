import type { Logger } from "pino";
import { WebSocket } from "ws";
import {
  type AgentHelloParams,
  type AgentHelloResult,
  fromRpcError,
  type IncomingRequest,
  parseParams,
  RPC_ERRORS,
  type RpcPeer,
  rpcError,
  toRpcError,
} from "../protocol/index.js";
import { credentialKind, identityMismatch } from "./agent-auth.js";
import type { AgentInfo, AgentRegistry } from "./agent-registry.js";
import type { Report, ReportLog } from "./report-log.js";
import type { Session } from "./session.js";

export interface HelloHandlerOptions {
  registry: AgentRegistry;
  reports: ReportLog;
  byHost: Map<string, Session>;
  peerFor: (hostId: string) => RpcPeer;
  heartbeatIntervalMs: number;
  duplicateProbeMs: number;
  log: Logger | undefined;
  accepted: (session: Session, info: AgentInfo, report: Report) => void;
}

/**
 * agent.hello on the reference server. Refused: a hostId the connection's credentials do not
 * name (-32012, logged with both identities), a hello the agent budget cannot keep (-32003),
 * and a second agent with the hostId of one that is connected and answers a ping (-32002): two
 * daemons with one host id would otherwise replace each other forever; the newcomer backs off
 * and retries, and takes over once the first is gone. Accepted: the session becomes its host's,
 * the answer goes out, then every call still pending for the host (same ids) — unless the agent
 * said its journal was damaged: those calls are failed here (-32011) instead, never re-sent,
 * and the answer acknowledges the damage, promising only new ids from now on.
 */
export class HelloHandler {
  constructor(private readonly options: HelloHandlerOptions) {}

  async handle(session: Session, peer: RpcPeer, request: IncomingRequest): Promise<void> {
    const { id } = request;
    const { registry, byHost, log } = this.options;
    let hello: AgentHelloParams;
    try {
      hello = parseParams("agent.hello", request.params);
    } catch (error) {
      peer.respondError(id, toRpcError(error));
      return;
    }
    const hostId = hello.hostId;
    if (session.hostId !== undefined && session.hostId !== hostId) {
      const text = `params.hostId: this connection already said hello as ${JSON.stringify(session.hostId)}; reconnect to be another host`;
      peer.respondError(id, rpcError(RPC_ERRORS.invalidRequest, text, "params.hostId"));
      return;
    }
    const mismatch = identityMismatch(hostId, session.credentials);
    if (mismatch !== undefined) {
      log?.warn(
        {
          claimed: hostId,
          certificate: session.credentials.certificateNames,
          tokenHost: session.credentials.tokenHost,
          remote: session.remoteAddress,
        },
        `refused agent.hello: the hostId is not the host of the connection's credentials (${mismatch})`,
      );
      const text = `params.hostId: ${JSON.stringify(hostId)} is not the host this connection authenticated as: ${mismatch}`;
      peer.respondError(id, rpcError(RPC_ERRORS.unauthorized, text, "params.hostId", "unauthorized"));
      return;
    }
    if (!registry.admit(hostId, request.size)) {
      const text = `the server's memory for agent inventories is full (${registry.bytes} bytes for ${registry.size} hosts); retry later`;
      log?.warn({ host: hostId, bytes: request.size }, "refused agent.hello: agent budget full");
      peer.respondError(id, rpcError(RPC_ERRORS.busy, text, undefined, "busy"));
      return;
    }
    const incumbent = byHost.get(hostId);
    if (incumbent !== undefined && incumbent !== session) {
      const alive = await probe(incumbent, this.options.duplicateProbeMs);
      const current = byHost.get(hostId);
      if (alive || (current !== undefined && current !== incumbent && current !== session)) {
        log?.warn(
          { host: hostId, connected: incumbent.remoteAddress, newcomer: session.remoteAddress },
          "refused agent.hello: an agent with this hostId is connected and alive (two daemons with one host id?)",
        );
        const text = `params.hostId: an agent with hostId ${JSON.stringify(hostId)} is already connected (from ${incumbent.remoteAddress ?? "?"}) and answering; a second agent with the same hostId is refused: give each host its own hostId`;
        peer.respondError(id, rpcError(RPC_ERRORS.conflict, text, "params.hostId", "conflict"));
        return;
      }
      if (session.socket.readyState !== WebSocket.OPEN) return;
      log?.info({ host: hostId, previous: incumbent.remoteAddress }, "the previous connection of this host did not answer: replaced");
      byHost.delete(hostId);
      incumbent.socket.terminate();
    }
    this.accept(session, peer, request, hello);
  }

  private accept(session: Session, peer: RpcPeer, request: IncomingRequest, hello: AgentHelloParams): void {
    const { registry, byHost, log } = this.options;
    const hostId = hello.hostId;
    const hostPeer = this.options.peerFor(hostId);
    if (hello.journalDamaged === true) {
      log?.warn(
        { host: hostId, pending: hostPeer.pendingCount },
        "the agent's journal is damaged: failing its pending calls, sending only new ids",
      );
      hostPeer.rejectAll(
        fromRpcError(
          rpcError(
            RPC_ERRORS.journalDamaged,
            `the agent's command journal was damaged, so whether it ran this command is unknown; reissue with a new id or send state.sync`,
            undefined,
            "journal_damaged",
          ),
        ),
      );
    }
    session.hostId = hostId;
    byHost.set(hostId, session);
    const now = new Date().toISOString();
    const info: AgentInfo = {
      hostId,
      hostname: hello.hostname,
      hypervisor: hello.hypervisor,
      versions: hello.versions,
      capabilities: hello.capabilities,
      inventory: hello.inventory,
      connected: true,
      connectedAt: now,
      lastSeen: now,
      remoteAddress: session.remoteAddress,
      certificateSubject: session.credentials.certificateSubject,
      credential: credentialKind(session.credentials),
      pendingCommands: 0,
    };
    const { resumeToken, resumed } = registry.register(info, request.size, hello.resumeToken);
    const report = this.options.reports.add({ hostId, method: "agent.hello", params: hello }, request.size);
    const answer: AgentHelloResult = { resumeToken, heartbeatIntervalMs: this.options.heartbeatIntervalMs, resumed };
    if (hello.journalDamaged === true) answer.journalDamageAcknowledged = true;
    peer.respond(request.id, answer);
    // Answer first, then what the agent has not answered yet (same ids: no double execution).
    hostPeer.detach("another connection of the host said hello");
    session.peer = hostPeer;
    hostPeer.attach(session.transport);
    log?.info({ host: hostId, resumed, credential: info.credential }, "agent connected");
    this.options.accepted(session, info, report);
  }
}

/** Whether a connection answers a ping within `timeoutMs`. */
function probe(session: Session, timeoutMs: number): Promise<boolean> {
  const socket = session.socket;
  if (socket.readyState !== WebSocket.OPEN) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onPong = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      socket.off("pong", onPong);
      resolve(false);
    }, timeoutMs);
    socket.once("pong", onPong);
    socket.ping();
  });
}

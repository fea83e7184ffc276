import type { AddressInfo } from "node:net";
import { type WebSocket, WebSocketServer } from "ws";
import { AgentChannel, type AgentChannelOptions } from "../../src/channel/index.js";
import { type MethodParams, type ServerMethod, SUBPROTOCOL } from "../../src/protocol/index.js";

/**
 * A recording command handler for channel tests: counts executions per command id (the
 * exactly-once checks), records start/end order, and holds `vm.stop` for a VM until the test
 * releases it, so tests can cut, stall or restart things while a command runs.
 */
export class RecordingHandler {
  readonly executions = new Map<string, number>();
  readonly events: string[] = [];
  /** The abort signal of the most recent execution. */
  lastSignal: AbortSignal | undefined;
  private readonly gates = new Map<string, { promise: Promise<void>; release: () => void }>();

  hold(uuid: string): void {
    let release = () => {};
    const promise = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.gates.set(uuid, { promise, release });
  }

  release(uuid: string): void {
    this.gates.get(uuid)?.release();
    this.gates.delete(uuid);
  }

  count(id: string | number): number {
    return this.executions.get(String(id)) ?? 0;
  }

  readonly handle: AgentChannelOptions["handle"] = async (method, params, context) => {
    this.executions.set(String(context.id), this.count(context.id) + 1);
    this.lastSignal = context.signal;
    const uuid = (params as { uuid?: string; vmUuid?: string }).uuid ?? (params as { vmUuid?: string }).vmUuid ?? "-";
    this.events.push(`start ${method} ${uuid}`);
    try {
      const gate = this.gates.get(uuid);
      if (gate !== undefined) await gate.promise;
      return resultFor(method, params);
    } finally {
      this.events.push(`end ${method} ${uuid}`);
    }
  };
}

function resultFor(method: ServerMethod, params: unknown): unknown {
  switch (method) {
    case "vm.stop":
      return { uuid: (params as MethodParams<"vm.stop">).uuid, state: "stopped" };
    case "vm.list":
      return { vms: [] };
    case "network.ensure":
      return { networkId: (params as MethodParams<"network.ensure">).networkId, bridge: "v6br-test" };
    case "nic.unplug": {
      const unplug = params as MethodParams<"nic.unplug">;
      return { vmUuid: unplug.vmUuid, mac: unplug.mac, unplugged: true };
    }
    case "host.diagnose":
      return { checks: [{ name: "kernel", status: "ok", message: "fine" }] };
    default:
      return {};
  }
}

export function hello(hostId: string): AgentChannelOptions["hello"] {
  return async () => ({
    hostId,
    hostname: `${hostId}.test`,
    hypervisor: "kvm",
    versions: { agent: "0.1.0", hypervisor: "test" },
    capabilities: ["nftables"],
    inventory: { networks: [], vifs: [] },
  });
}

/** Fast timers so faults are noticed within a second. */
export const FAST = {
  liveness: { pingIntervalMs: 100, silenceTimeoutMs: 600, connectTimeoutMs: 2000 },
  backoff: { initialMs: 30, maxMs: 200, factor: 2 },
  heartbeatIntervalMs: 200,
} satisfies Partial<AgentChannelOptions>;

export function vmUuid(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
}

export function makeAgent(options: Partial<AgentChannelOptions> & Pick<AgentChannelOptions, "servers">, handler = new RecordingHandler()) {
  const channel = new AgentChannel({
    hello: hello("host-1"),
    handle: handler.handle,
    resourceKey: (_method, params) => (params as { uuid?: string; vmUuid?: string }).uuid ?? (params as { vmUuid?: string }).vmUuid,
    ...FAST,
    ...options,
  });
  return { channel, handler };
}

/** Resolves on the channel's next `connected` event. */
export function nextConnected(channel: AgentChannel): Promise<{ server: string; resumed: boolean; delivered: number }> {
  return new Promise((resolve) => channel.once("connected", resolve));
}

export async function eventually(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A bare v6agent/1 server for channel tests that need a server the reference one will not be:
 * it answers agent.hello (optionally acknowledging journal damage, by default not), pings,
 * heartbeats and reports, records every frame, and lets the test send any frame it likes.
 */
export class RawServer {
  readonly frames: Record<string, unknown>[] = [];
  readonly hellos: Record<string, unknown>[] = [];
  private readonly wss: WebSocketServer;
  private socket: WebSocket | undefined;

  constructor(private readonly options: { acknowledgeDamage?: boolean } = {}) {
    this.wss = new WebSocketServer({ host: "127.0.0.1", port: 0, handleProtocols: () => SUBPROTOCOL });
    this.wss.on("connection", (socket) => {
      this.socket = socket;
      socket.on("message", (data) => this.onFrame(socket, JSON.parse(String(data)) as Record<string, unknown>));
    });
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}/v6agent`;
  }

  async ready(): Promise<void> {
    if ((this.wss.address() as AddressInfo | null)?.port) return;
    await new Promise((resolve) => this.wss.once("listening", resolve));
  }

  send(frame: unknown): void {
    this.socket?.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** Frames that answer the request `id` (results and errors). */
  answers(id: string | number): Record<string, unknown>[] {
    return this.frames.filter((frame) => frame.id === id && !("method" in frame));
  }

  async close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    await new Promise((resolve) => this.wss.close(resolve));
  }

  private onFrame(socket: WebSocket, frame: Record<string, unknown>): void {
    this.frames.push(frame);
    const answer = (result: unknown) => socket.send(JSON.stringify({ jsonrpc: "2.0", id: frame.id, result }));
    switch (frame.method) {
      case "agent.hello": {
        this.hellos.push(frame.params as Record<string, unknown>);
        const damaged = (frame.params as { journalDamaged?: boolean }).journalDamaged === true;
        const result: Record<string, unknown> = { resumeToken: "raw-token", heartbeatIntervalMs: 60_000, resumed: false };
        if (damaged && this.options.acknowledgeDamage === true) result.journalDamageAcknowledged = true;
        answer(result);
        return;
      }
      case "agent.ping":
      case "agent.heartbeat":
        answer({ time: new Date().toISOString() });
        return;
      case "vif.report":
        answer({});
        return;
    }
  }
}

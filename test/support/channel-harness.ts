import { AgentChannel, type AgentChannelOptions } from "../../src/channel/index.js";
import type { MethodParams, ServerMethod } from "../../src/protocol/index.js";

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

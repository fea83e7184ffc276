// A real agent process for restart tests (run from dist/ after `npm run build`): an AgentChannel
// whose handler records every execution in a file and holds vm.stop until a release file exists.
// The test kills it with SIGKILL mid-command and starts another on the same outbox journal.
import { appendFileSync, existsSync } from "node:fs";
import { AgentChannel } from "../../src/channel/index.js";

interface Config {
  url: string;
  outboxPath: string;
  executionsPath: string;
  releasePath: string;
}

const config = JSON.parse(process.argv[2] as string) as Config;

const channel = new AgentChannel({
  servers: [config.url],
  outboxPath: config.outboxPath,
  liveness: { pingIntervalMs: 100, silenceTimeoutMs: 600, connectTimeoutMs: 2000 },
  backoff: { initialMs: 30, maxMs: 200 },
  heartbeatIntervalMs: 200,
  hello: async () => ({
    hostId: "restart-host",
    hostname: "restart-host.test",
    hypervisor: "kvm",
    versions: { agent: "0.1.0", hypervisor: "test" },
    capabilities: [],
    inventory: { networks: [], vifs: [] },
  }),
  handle: async (method, params, context) => {
    appendFileSync(config.executionsPath, `${String(context.id)}\n`);
    if (method === "vm.stop") {
      while (!existsSync(config.releasePath)) await new Promise((resolve) => setTimeout(resolve, 20));
      return { uuid: (params as { uuid: string }).uuid, state: "stopped" };
    }
    return { vms: [] };
  },
});
channel.on("connected", (info) => process.stdout.write(`${JSON.stringify({ connected: info })}\n`));
channel.start();

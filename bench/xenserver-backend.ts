/**
 * XenServer backend against the XAPI simulator over loopback: how long a NIC attach takes
 * (VM.get_allowed_VIF_devices + VIF.create + VIF.plug + VM.get_domid through the xen-api client),
 * how long a XAPI change takes to reach the backend as an event (event.from + object cache), and
 * what a session expiry in the middle of an operation costs. Prints numbers, asserts nothing.
 *
 *   npx tsc -p . && node dist/bench/xenserver-backend.js
 */
import type { Mac } from "../src/addressing/index.js";
import { XenServerHypervisor } from "../src/hypervisor/xenserver/index.js";
import { startXapiSimulator } from "../src/lab/xapi-sim/index.js";

const VMS = 50;
const NICS_PER_VM = 4;

function mac(vm: number, nic: number): Mac {
  return `52:54:00:${(vm >> 8).toString(16).padStart(2, "0")}:${(vm & 0xff).toString(16).padStart(2, "0")}:${nic.toString(16).padStart(2, "0")}` as Mac;
}

function stats(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0).toFixed(2);
  return `median ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${at(1)} ms (n=${samples.length})`;
}

const sim = await startXapiSimulator({ asyncDelayMs: 0 });
const backend = new XenServerHypervisor({ url: sim.url, auth: { user: "root", password: "xenroot" } });
await backend.connect();
try {
  const vms = Array.from({ length: VMS }, (_, index) => sim.seed.vm({ nameLabel: `bench-${index}` }));
  while ((await backend.listVms()).length < VMS) await new Promise((resolve) => setTimeout(resolve, 10));
  for (const vm of vms) await sim.simulator.call("VM.start", [sim.db.all("session")[0]?.[0], vm.ref, false, false]);

  const attach: number[] = [];
  for (let nic = 0; nic < NICS_PER_VM; nic++) {
    for (const [index, vm] of vms.entries()) {
      const started = performance.now();
      await backend.attachNic(vm.uuid, { bridge: "xenbr0", mac: mac(index, nic) });
      attach.push(performance.now() - started);
    }
  }
  console.log(`attachNic on a running VM (${VMS * NICS_PER_VM} NICs): ${stats(attach)}`);

  const latency: number[] = [];
  for (const vm of vms.slice(0, 30)) {
    const seen = new Promise<number>((resolve) => {
      const off = backend.onEvent((event) => {
        if (event.type === "domid-changed" && event.uuid === vm.uuid) {
          off();
          resolve(performance.now());
        }
      });
    });
    const started = performance.now();
    await sim.simulator.call("VM.hard_reboot", [sim.db.all("session")[0]?.[0], vm.ref]);
    latency.push((await seen) - started);
  }
  console.log(`XAPI reboot -> domid-changed event in the backend: ${stats(latency)}`);

  const expiry: number[] = [];
  for (let round = 0; round < 10; round++) {
    sim.addFault({ kind: "expire-session", method: "VIF.create", times: 2 });
    const started = performance.now();
    await backend.attachNic(vms[round]?.uuid as string, { bridge: "xenbr0", mac: mac(round, 0x80) });
    expiry.push(performance.now() - started);
  }
  console.log(`attachNic through a double session expiry (client re-login, backend reconnect, retry): ${stats(expiry)}`);
} finally {
  await backend.close();
  await sim.close();
}

// The XAPI simulator as a process of its own, for `v6agent lab --hypervisor xenserver`: the lab's
// agent keeps talking to it after `lab --keep` has exited, and `lab down` stops it by pid.
// argv[2] is JSON {dom0, vms: [{name, guestNetns}]}; the first stdout line is JSON
// {url, vms: [{name, uuid}]}. Every VM's guest side is the named network namespace (NetnsDom0).
import { NetnsDom0 } from "./dom0.js";
import { startXapiSimulator } from "./server.js";

interface LabSimSpec {
  dom0: string;
  vms: { name: string; guestNetns: string }[];
}

const spec = JSON.parse(process.argv[2] ?? "{}") as LabSimSpec;
const guestOf = new Map<string, string>();
const sim = await startXapiSimulator({
  host: "127.0.0.1",
  port: 0,
  dom0: new NetnsDom0({ dom0: spec.dom0, guestNetns: (vmUuid) => guestOf.get(vmUuid) }),
});
const vms = spec.vms.map((vm) => {
  const seeded = sim.seed.vm({ nameLabel: vm.name });
  guestOf.set(seeded.uuid, vm.guestNetns);
  return { name: vm.name, uuid: seeded.uuid };
});
process.stdout.write(`${JSON.stringify({ url: sim.url, vms })}\n`);
const stop = () => {
  sim.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Mac } from "../../../../src/addressing/index.js";
import type { HypervisorEvent, VmSpec } from "../../../../src/hypervisor/hypervisor.js";
import { KvmHypervisor } from "../../../../src/hypervisor/kvm/kvm-hypervisor.js";
import { createLogger } from "../../../../src/log.js";

/** The KVM backend's logic on libvirt's test driver; attach and real guests are in test/e2e. */
const logger = createLogger("silent");

function spec(uuid: string, name: string): VmSpec {
  return {
    name,
    uuid,
    memoryMiB: 64,
    vcpus: 1,
    boot: { kind: "kernel", kernel: "/nonexistent/vmlinuz", initrd: "/nonexistent/initrd", cmdline: "console=ttyS0" },
    nics: [{ bridge: "v6br7", mac: "52:54:00:00:07:01" as Mac }],
  };
}

describe("KvmHypervisor on test:///default", () => {
  let hypervisor: KvmHypervisor;
  let events: HypervisorEvent[];

  beforeEach(async () => {
    hypervisor = new KvmHypervisor({ uri: "test:///default", domainType: "test", logger });
    events = [];
    hypervisor.onEvent((event) => events.push(event));
    await hypervisor.connect();
  });
  afterEach(() => hypervisor.close());

  it("reports facts and lists the driver's VM with its NIC", async () => {
    expect(await hypervisor.facts()).toMatchObject({ kind: "kvm", hypervisorVersion: expect.stringMatching(/^TEST /) });
    const vms = await hypervisor.listVms();
    expect(vms).toEqual([
      {
        uuid: "6695eb01-f6a4-8304-79aa-97f2502e193f",
        name: "test",
        state: "running",
        domainId: 1,
        nics: [{ mac: "aa:bb:cc:dd:ee:ff", device: "testnet0", bridge: undefined, model: "unknown" }],
      },
    ]);
  });

  it("deploys, stops and destroys a VM, naming its tap and emitting events", async () => {
    const uuid = "7e1f0c1a-0000-4000-8000-000000000001";
    const vm = await hypervisor.deployVm(spec(uuid, "deploy-1"));
    expect(vm).toMatchObject({ uuid, name: "deploy-1", state: "running" });
    expect(vm.nics).toEqual([{ mac: "52:54:00:00:07:01", device: "v6525400000701", bridge: "v6br7", model: "virtio" }]);
    await hypervisor.stopVm(uuid, { force: true });
    expect((await hypervisor.getVm(uuid)).state).toBe("stopped");
    expect((await hypervisor.getVm(uuid)).nics[0]?.device).toBeUndefined();
    await hypervisor.startVm(uuid);
    await hypervisor.destroyVm(uuid);
    await expect(hypervisor.getVm(uuid)).rejects.toMatchObject({ code: "not_found", field: "uuid" });
    await expect
      .poll(() => events.map((event) => event.type))
      .toEqual(["vm-defined", "vm-started", "vm-stopped", "vm-started", "vm-stopped", "vm-undefined"]);
  });

  it("refuses bad input with a clear error and leaves nothing behind", async () => {
    const before = await hypervisor.listVms();
    await expect(hypervisor.getVm("00000000-0000-4000-8000-00000000dead")).rejects.toMatchObject({
      code: "not_found",
      message: expect.stringContaining("00000000-0000-4000-8000-00000000dead"),
    });
    await expect(hypervisor.getVm("'; reboot")).rejects.toMatchObject({ code: "invalid_argument", field: "uuid" });
    const bad = spec("7e1f0c1a-0000-4000-8000-000000000002", "bad-1");
    bad.nics = [{ bridge: "v6br7", mac: "52:54:00:00:07:01$(reboot)" as Mac }];
    await expect(hypervisor.deployVm(bad)).rejects.toMatchObject({ code: "invalid_argument", field: "nics[0].mac" });
    bad.nics = [{ bridge: "sixteen-bytes-br", mac: "52:54:00:00:07:01" as Mac }];
    await expect(hypervisor.deployVm(bad)).rejects.toMatchObject({ code: "invalid_argument", field: "nics[0].bridge" });
    // A UUID already in use is a conflict, not a silent redefinition.
    await expect(hypervisor.deployVm(spec("6695eb01-f6a4-8304-79aa-97f2502e193f", "dup"))).rejects.toMatchObject({ code: "conflict" });
    // The test driver cannot attach devices: said plainly.
    await expect(
      hypervisor.attachNic("6695eb01-f6a4-8304-79aa-97f2502e193f", { bridge: "v6br7", mac: "52:54:00:00:07:09" as Mac }),
    ).rejects.toMatchObject({ code: "not_implemented" });
    await expect(hypervisor.detachNic("6695eb01-f6a4-8304-79aa-97f2502e193f", "52:54:00:00:07:09" as Mac)).rejects.toMatchObject({
      code: "not_found",
      field: "mac",
    });
    expect(await hypervisor.listVms()).toEqual(before);
  });

  it("says plainly when libvirtd is not there", async () => {
    const absent = new KvmHypervisor({ uri: "qemu+unix:///system?socket=/nonexistent/libvirt-sock", logger });
    await expect(absent.connect()).rejects.toMatchObject({
      code: "unavailable",
      message: expect.stringMatching(/opening qemu\+unix.*Failed to connect socket/),
    });
    await expect(absent.listVms()).rejects.toMatchObject({ code: "unavailable" });
    await absent.close();
  });
});

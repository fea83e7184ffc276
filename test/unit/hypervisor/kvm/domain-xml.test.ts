import { describe, expect, it } from "vitest";
import { parseUuid } from "../../../../src/addressing/index.js";
import type { VmSpec } from "../../../../src/hypervisor/hypervisor.js";
import { domainXml, parseDomainNics, validateVmSpec } from "../../../../src/hypervisor/kvm/domain-xml.js";
import { interfaceXml, validateNic } from "../../../../src/hypervisor/kvm/interface-xml.js";
import { child, parseXml } from "../../../../src/hypervisor/kvm/xml.js";

const spec: VmSpec = {
  name: "guest-1",
  uuid: "6695EB01-F6A4-8304-79AA-97F2502E193F",
  memoryMiB: 128,
  vcpus: 1,
  boot: { kind: "kernel", kernel: "/boot/vmlinuz", initrd: "/tmp/initrd.img", cmdline: "console=ttyS0 quiet <&>\"'" },
  nics: [{ bridge: "v6br100", mac: "52:54:00:00:00:42" as VmSpec["nics"][0]["mac"] }],
  consoleLog: "/tmp/console.log",
};

describe("domain XML", () => {
  it("builds a definition whose every value reads back unchanged, escaped by the XML library", () => {
    const xml = domainXml(validateVmSpec(spec), "qemu");
    const domain = child(parseXml(xml), "domain");
    expect(domain?.["@_type"]).toBe("qemu");
    expect(domain?.name).toBe("guest-1");
    expect(domain?.uuid).toBe("6695eb01-f6a4-8304-79aa-97f2502e193f");
    expect(child(domain, "os")?.cmdline).toBe("console=ttyS0 quiet <&>\"'");
    expect(xml).toContain("&lt;&amp;&gt;");
    expect(parseDomainNics(xml, true)).toEqual([
      { mac: "52:54:00:00:00:42", bridge: "v6br100", device: "v6525400000042", model: "virtio", alias: undefined },
    ]);
    // A stopped VM has no tap.
    expect(parseDomainNics(xml, false)[0]?.device).toBeUndefined();
  });

  it("builds interface XML with the agent's tap name", () => {
    const nic = validateNic({ bridge: "br0", mac: "52:54:00:AB:CD:EF" as VmSpec["nics"][0]["mac"], device: "tapx1" as never });
    const parsed = parseDomainNics(`<domain><devices>${interfaceXml(nic)}</devices></domain>`, true);
    expect(parsed[0]).toMatchObject({ mac: "52:54:00:ab:cd:ef", device: "tapx1", bridge: "br0", model: "virtio" });
  });

  it.each([
    [{ uuid: "not-a-uuid" }, "uuid"],
    [{ name: "bad name; rm -rf /" }, "name"],
    [{ memoryMiB: 0 }, "memoryMiB"],
    [{ vcpus: 1.5 }, "vcpus"],
    [{ boot: { kind: "kernel", kernel: "relative/path" } }, "boot.kernel"],
    [{ boot: { kind: "floppy" } }, "boot.kind"],
    [{ nics: [{ bridge: "br0", mac: "52:54:00:00:00:01;reboot" }] }, "nics[0].mac"],
    [{ nics: [{ bridge: "a-bridge-of-16-b", mac: "52:54:00:00:00:01" }] }, "nics[0].bridge"],
    [{ nics: [{ bridge: "br0", mac: "52:54:00:00:00:01", model: "evil'" }] }, "nics[0].model"],
    [{ nics: [{ bridge: "br0", mac: "52:54:00:00:00:01", device: "vnet0" }] }, "nics[0].device"],
    [
      {
        nics: [
          { bridge: "br0", mac: "52:54:00:00:00:01" },
          { bridge: "br1", mac: "52:54:00:00:00:01" },
        ],
      },
      "nics[1].mac",
    ],
  ])("refuses %j naming the field %s", (patch, field) => {
    expect(() => validateVmSpec({ ...spec, ...(patch as Partial<VmSpec>) })).toThrow(expect.objectContaining({ field }));
  });

  it("normalises UUIDs to lower case", () => {
    expect(parseUuid("6695EB01-F6A4-8304-79AA-97F2502E193F")).toBe("6695eb01-f6a4-8304-79aa-97f2502e193f");
  });
});

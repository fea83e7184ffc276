import { isAbsolute } from "node:path";
import { parseUuid } from "../../addressing/index.js";
import { InvalidArgumentError } from "../../errors.js";
import type { VmSpec } from "../hypervisor.js";
import { interfaceElement, type ParsedNic, parseInterfaceElement, type ValidNic, validateNic } from "./interface-xml.js";
import { buildXml, child, children, parseXml, type XmlNode } from "./xml.js";

/** libvirt domain type: `kvm` (hardware virtualisation), `qemu` (software emulation), `test` (libvirt's test driver). */
export type DomainType = "kvm" | "qemu" | "test";

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function parsePath(input: unknown, field: string): string {
  if (typeof input !== "string" || !isAbsolute(input) || input.includes("\0") || /[\r\n]/.test(input)) {
    throw new InvalidArgumentError(field, `${JSON.stringify(input)} is not an absolute file path`);
  }
  return input;
}

function parseInteger(input: unknown, field: string, min: number, max: number): number {
  if (typeof input !== "number" || !Number.isInteger(input) || input < min || input > max) {
    throw new InvalidArgumentError(field, `expected an integer from ${min} to ${max}, got ${JSON.stringify(input)}`);
  }
  return input;
}

export interface ValidVmSpec {
  name: string;
  uuid: string;
  memoryMiB: number;
  vcpus: number;
  boot: VmSpec["boot"];
  nics: ValidNic[];
  consoleLog: string | undefined;
}

/** Checks every field of a deploy request before libvirt sees any of it. */
export function validateVmSpec(spec: VmSpec): ValidVmSpec {
  if (typeof spec !== "object" || spec === null) throw new InvalidArgumentError("vm", "expected a VM spec object");
  if (typeof spec.name !== "string" || !NAME_PATTERN.test(spec.name)) {
    throw new InvalidArgumentError(
      "name",
      `${JSON.stringify(spec.name)} is not a VM name (1–64 letters, digits, '_', '.', '-', starting with a letter or digit)`,
    );
  }
  const boot = spec.boot;
  let validBoot: VmSpec["boot"];
  if (boot?.kind === "kernel") {
    if (boot.cmdline !== undefined && (typeof boot.cmdline !== "string" || boot.cmdline.length > 4096 || boot.cmdline.includes("\0"))) {
      throw new InvalidArgumentError("boot.cmdline", "expected a kernel command line of at most 4096 characters");
    }
    validBoot = {
      kind: "kernel",
      kernel: parsePath(boot.kernel, "boot.kernel"),
      initrd: boot.initrd === undefined ? undefined : parsePath(boot.initrd, "boot.initrd"),
      cmdline: boot.cmdline,
    };
  } else if (boot?.kind === "disk") {
    validBoot = { kind: "disk", path: parsePath(boot.path, "boot.path") };
  } else {
    throw new InvalidArgumentError("boot.kind", `expected "kernel" or "disk", got ${JSON.stringify((boot as { kind?: unknown })?.kind)}`);
  }
  if (!Array.isArray(spec.nics)) throw new InvalidArgumentError("nics", "expected an array of NICs");
  const nics = spec.nics.map((nic, index) => validateNic(nic, `nics[${index}]`));
  for (const key of ["mac", "device"] as const) {
    const seen = new Set<string>();
    nics.forEach((nic, index) => {
      if (seen.has(nic[key])) throw new InvalidArgumentError(`nics[${index}].${key}`, `${nic[key]} is used by another NIC of this VM`);
      seen.add(nic[key]);
    });
  }
  return {
    name: spec.name,
    uuid: parseUuid(spec.uuid),
    memoryMiB: parseInteger(spec.memoryMiB, "memoryMiB", 16, 1_048_576),
    vcpus: parseInteger(spec.vcpus, "vcpus", 1, 256),
    boot: validBoot,
    nics,
    consoleLog: spec.consoleLog === undefined ? undefined : parsePath(spec.consoleLog, "consoleLog"),
  };
}

/** The persistent definition of a VM. */
export function domainXml(spec: ValidVmSpec, type: DomainType): string {
  const os: XmlNode = { type: { "@_arch": "x86_64", "#text": "hvm" } };
  const devices: XmlNode = {};
  if (spec.boot.kind === "kernel") {
    os.kernel = spec.boot.kernel;
    if (spec.boot.initrd !== undefined) os.initrd = spec.boot.initrd;
    if (spec.boot.cmdline !== undefined) os.cmdline = spec.boot.cmdline;
  } else {
    os.boot = { "@_dev": "hd" };
    devices.disk = [
      {
        "@_type": "file",
        "@_device": "disk",
        driver: { "@_name": "qemu", "@_type": spec.boot.path.endsWith(".qcow2") ? "qcow2" : "raw" },
        source: { "@_file": spec.boot.path },
        target: { "@_dev": "vda", "@_bus": "virtio" },
      },
    ];
  }
  devices.interface = spec.nics.map(interfaceElement);
  // The serial console goes to a file when asked (tests read the guest's output), else a pty.
  devices.serial =
    spec.consoleLog === undefined
      ? [{ "@_type": "pty", target: { "@_port": "0" } }]
      : [{ "@_type": "file", source: { "@_path": spec.consoleLog }, target: { "@_port": "0" } }];
  devices.memballoon = { "@_model": "none" };
  return buildXml({
    domain: {
      "@_type": type,
      name: spec.name,
      uuid: spec.uuid,
      memory: { "@_unit": "MiB", "#text": String(spec.memoryMiB) },
      vcpu: String(spec.vcpus),
      os,
      // ACPI lets the guest see PCI hot-plug (NIC attach) and the shutdown button.
      features: { acpi: { "#text": "" } },
      on_poweroff: "destroy",
      on_reboot: "restart",
      on_crash: "destroy",
      devices,
    },
  });
}

/** The bridged NICs of a domain's XML. */
export function parseDomainNics(xml: string, running: boolean): ParsedNic[] {
  const devices = child(child(parseXml(xml), "domain"), "devices");
  const nics: ParsedNic[] = [];
  for (const element of children(devices, "interface")) {
    const nic = parseInterfaceElement(element, running);
    if (nic !== undefined) nics.push(nic);
  }
  return nics;
}

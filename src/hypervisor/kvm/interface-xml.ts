import { type InterfaceName, type Mac, parseInterfaceName, parseMac } from "../../addressing/index.js";
import { InvalidArgumentError } from "../../errors.js";
import type { NicSpec, VmNic } from "../hypervisor.js";
import { tapNameForMac } from "./tap-name.js";
import { attribute, buildXml, child, type XmlNode } from "./xml.js";

/** NIC models QEMU offers that a guest NIC on a shared network may use. */
const NIC_MODELS = new Set(["virtio", "e1000", "e1000e", "rtl8139", "ne2k_pci", "pcnet", "vmxnet3"]);

/** A NIC request with every field checked and the tap name decided. */
export interface ValidNic {
  bridge: InterfaceName;
  mac: Mac;
  model: string;
  device: InterfaceName;
}

export function validateNic(nic: NicSpec, field = "nic"): ValidNic {
  if (typeof nic !== "object" || nic === null) throw new InvalidArgumentError(field, "expected a NIC object");
  const mac = parseMac(nic.mac, `${field}.mac`);
  const bridge = parseInterfaceName(nic.bridge, `${field}.bridge`);
  const model = nic.model ?? "virtio";
  if (typeof model !== "string" || !NIC_MODELS.has(model)) {
    throw new InvalidArgumentError(
      `${field}.model`,
      `unknown NIC model ${JSON.stringify(model)}; use one of ${[...NIC_MODELS].join(", ")}`,
    );
  }
  const device = nic.device === undefined ? tapNameForMac(mac) : parseInterfaceName(nic.device, `${field}.device`);
  if (/^(vnet|vif|macvtap)/.test(device)) {
    throw new InvalidArgumentError(
      `${field}.device`,
      `${device}: libvirt renames taps starting with vnet, vif or macvtap; choose another name`,
    );
  }
  return { bridge, mac, model, device };
}

/** The `<interface>` element of a bridged guest NIC. */
export function interfaceElement(nic: ValidNic): XmlNode {
  return {
    "@_type": "bridge",
    mac: { "@_address": nic.mac },
    source: { "@_bridge": nic.bridge },
    target: { "@_dev": nic.device },
    model: { "@_type": nic.model },
  };
}

export function interfaceXml(nic: ValidNic): string {
  return buildXml({ interface: interfaceElement(nic) });
}

/** The smallest `<interface>` libvirt matches a detach against: the MAC (a bridged NIC also needs its source to parse). */
export function interfaceXmlForDetach(mac: Mac, bridge: string): string {
  return buildXml({ interface: { "@_type": "bridge", mac: { "@_address": mac }, source: { "@_bridge": bridge } } });
}

export interface ParsedNic extends VmNic {
  /** libvirt's device alias (`net0`, ...), present on a running domain; device events name it. */
  alias: string | undefined;
}

/** Reads one `<interface>` element; `running` says whether its tap exists. */
export function parseInterfaceElement(element: XmlNode, running: boolean): ParsedNic | undefined {
  const address = attribute(child(element, "mac"), "address");
  if (address === undefined) return undefined;
  const target = attribute(child(element, "target"), "dev");
  let mac: Mac;
  let device: InterfaceName | undefined;
  try {
    mac = parseMac(address, "interface.mac");
    device = running && target !== undefined ? parseInterfaceName(target, "interface.target") : undefined;
  } catch {
    // A NIC defined outside the agent with a MAC or tap name we would never hand out: not ours.
    return undefined;
  }
  return {
    mac,
    device,
    bridge: attribute(child(element, "source"), "bridge"),
    model: attribute(child(element, "model"), "type") ?? "unknown",
    alias: attribute(child(element, "alias"), "name"),
  };
}

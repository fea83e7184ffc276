import type { Database, XapiRecord } from "./database.js";
import { newRef } from "./database.js";
import { NULL_REF } from "./datamodel.js";
import type { Dom0Network, Dom0Vif } from "./dom0.js";
import { XapiFailure } from "./failure.js";
import { constructorFields, randomMac, toInt } from "./values.js";

/** The guest NIC devices a VM may use (XAPI: 0–6 for a VM without PV-aware device tables). */
export const ALLOWED_VIF_DEVICES = ["0", "1", "2", "3", "4", "5", "6"];

/**
 * The constructors and operations of the agent's job, with XAPI's checks and error names:
 * networks, VLANs, VIFs (create/plug/unplug/destroy) and VM power (start/shutdown/reboot, a new
 * domid on every boot). dom0's devices come and go through the optional dom0 hook.
 */
export class XapiOperations {
  private nextDomid = 1;

  constructor(
    private readonly db: Database,
    private readonly dom0Hook: () => Dom0Network | undefined,
    private readonly vifAnswerDelayMs = 0,
  ) {}

  private get dom0(): Dom0Network | undefined {
    return this.dom0Hook();
  }

  allowedVifDevices(vmRef: unknown): string[] {
    const vm = this.db.get("VM", vmRef);
    const used = new Set((vm.VIFs as string[]).map((vif) => this.db.get("VIF", vif).device));
    return ALLOWED_VIF_DEVICES.filter((device) => !used.has(device));
  }

  managementInterface(hostRef: unknown): string {
    this.db.get("host", hostRef);
    const found = this.db.find("PIF", (pif) => pif.host === hostRef && pif.management === true);
    if (found === undefined) throw new XapiFailure("PIF_NOT_PRESENT", String(hostRef), "management");
    return found[0];
  }

  createNetwork(args: XapiRecord): string {
    const fields = constructorFields("network", args);
    if (fields.bridge === "" || fields.bridge === undefined) fields.bridge = this.nextBridgeName();
    return this.db.create("network", fields);
  }

  destroyNetwork(ref: unknown): string {
    const network = this.db.get("network", ref);
    if ((network.VIFs as string[]).length > 0) throw new XapiFailure("NETWORK_CONTAINS_VIF", ...(network.VIFs as string[]));
    if ((network.PIFs as string[]).length > 0) throw new XapiFailure("NETWORK_CONTAINS_PIF", ...(network.PIFs as string[]));
    this.db.remove("network", String(ref));
    return "";
  }

  createVlan(pifRef: unknown, tagParam: unknown, networkRef: unknown): string {
    const tagged = this.db.get("PIF", pifRef);
    const network = this.db.get("network", networkRef);
    const tag = toInt(tagParam, "tag");
    if (tag < 0 || tag > 4094) throw new XapiFailure("VLAN_TAG_INVALID", tag);
    if (tagged.VLAN_master_of !== NULL_REF && tagged.VLAN_master_of !== "Null") throw new XapiFailure("PIF_IS_VLAN", String(pifRef));
    for (const vlanRef of tagged.VLAN_slave_of as string[]) {
      if (this.db.get("VLAN", vlanRef).tag === tag) throw new XapiFailure("PIF_VLAN_EXISTS", String(tagged.device));
    }
    const vlan = newRef();
    const untagged = this.db.create("PIF", {
      device: tagged.device,
      network: networkRef,
      host: tagged.host,
      MAC: tagged.MAC,
      MTU: tagged.MTU,
      VLAN: tag,
      physical: false,
      currently_attached: false,
      VLAN_master_of: vlan,
    });
    this.db.create("VLAN", { tagged_PIF: pifRef, untagged_PIF: untagged, tag }, vlan);
    this.db.update("PIF", String(pifRef), { VLAN_slave_of: [...(tagged.VLAN_slave_of as string[]), vlan] });
    this.db.update("network", String(networkRef), { PIFs: [...(network.PIFs as string[]), untagged] });
    const host = this.db.get("host", tagged.host);
    this.db.update("host", String(tagged.host), { PIFs: [...(host.PIFs as string[]), untagged] });
    return vlan;
  }

  /** PIF.plug of a VLAN's untagged PIF: dom0 gets `<device>.<tag>` on the network's bridge. */
  async plugVlan(vlanRef: string): Promise<void> {
    const vlan = this.db.get("VLAN", vlanRef);
    const untagged = this.db.get("PIF", vlan.untagged_PIF);
    const tagged = this.db.get("PIF", vlan.tagged_PIF);
    const network = this.db.get("network", untagged.network);
    await this.dom0?.vlanPlugged?.({ device: String(tagged.device), tag: Number(vlan.tag), bridge: String(network.bridge) });
    this.db.update("PIF", String(vlan.untagged_PIF), { currently_attached: true });
  }

  async destroyVlan(ref: unknown): Promise<string> {
    const vlan = this.db.get("VLAN", ref);
    const untagged = this.db.get("PIF", vlan.untagged_PIF);
    const network = this.db.get("network", untagged.network);
    const tagged = this.db.get("PIF", vlan.tagged_PIF);
    await this.dom0?.vlanUnplugged?.({ device: String(tagged.device), tag: Number(vlan.tag), bridge: String(network.bridge) });
    this.db.update("network", String(untagged.network), { PIFs: (network.PIFs as string[]).filter((pif) => pif !== vlan.untagged_PIF) });
    this.db.update("PIF", String(vlan.tagged_PIF), { VLAN_slave_of: (tagged.VLAN_slave_of as string[]).filter((item) => item !== ref) });
    const host = this.db.get("host", untagged.host);
    this.db.update("host", String(untagged.host), { PIFs: (host.PIFs as string[]).filter((pif) => pif !== vlan.untagged_PIF) });
    this.db.remove("PIF", String(vlan.untagged_PIF));
    this.db.remove("VLAN", String(ref));
    return "";
  }

  /** A VLAN on every host's PIF with the same device as `pif` (a pool-wide VLAN). */
  createVlanFromPif(pifRef: unknown, networkRef: unknown, tag: unknown): string[] {
    const pif = this.db.get("PIF", pifRef);
    this.db.get("network", networkRef);
    const tagNumber = toInt(tag, "VLAN");
    if (tagNumber < 0 || tagNumber > 4094) throw new XapiFailure("VLAN_TAG_INVALID", tagNumber);
    const peers = this.db.all("PIF").filter(([, other]) => other.device === pif.device && other.physical === true);
    return peers.map(([ref]) => this.db.get("VLAN", this.createVlan(ref, tagNumber, networkRef)).untagged_PIF as string);
  }

  createVif(args: XapiRecord): string {
    const fields = constructorFields("VIF", args);
    const vm = this.db.get("VM", fields.VM);
    const network = this.db.get("network", fields.network);
    const device = String(fields.device);
    if (!/^\d+$/.test(device)) throw new XapiFailure("INVALID_DEVICE", device);
    for (const vifRef of vm.VIFs as string[]) {
      if (this.db.get("VIF", vifRef).device === device) throw new XapiFailure("DEVICE_ALREADY_EXISTS", device);
    }
    if (!ALLOWED_VIF_DEVICES.includes(device)) throw new XapiFailure("INVALID_DEVICE", device);
    let mac = String(fields.MAC ?? "");
    let autogenerated = false;
    if (mac === "") {
      mac = randomMac();
      autogenerated = true;
    } else if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) {
      throw new XapiFailure("MAC_INVALID", mac);
    }
    const vif = this.db.create("VIF", {
      ...fields,
      device,
      MAC: mac.toLowerCase(),
      MAC_autogenerated: autogenerated,
      currently_attached: false,
      MTU: Number(fields.MTU) || Number(network.MTU) || 1500,
    });
    this.db.update("VM", String(fields.VM), { VIFs: [...(vm.VIFs as string[]), vif] });
    this.db.update("network", String(fields.network), { VIFs: [...(network.VIFs as string[]), vif] });
    return vif;
  }

  destroyVif(ref: unknown): string {
    const vif = this.db.get("VIF", ref);
    const vm = this.db.get("VM", vif.VM);
    if (vif.currently_attached === true && vm.power_state === "Running") {
      throw new XapiFailure("OPERATION_NOT_ALLOWED", "VIF is currently attached; unplug it first");
    }
    const network = this.db.get("network", vif.network);
    this.db.update("VM", String(vif.VM), { VIFs: (vm.VIFs as string[]).filter((item) => item !== ref) });
    this.db.update("network", String(vif.network), { VIFs: (network.VIFs as string[]).filter((item) => item !== ref) });
    this.db.remove("VIF", String(ref));
    return "";
  }

  async plugVif(ref: unknown): Promise<string> {
    const vif = this.db.get("VIF", ref);
    const vm = this.db.get("VM", vif.VM);
    if (vm.power_state !== "Running")
      throw new XapiFailure("VM_BAD_POWER_STATE", String(vif.VM), "running", String(vm.power_state).toLowerCase());
    if (vif.currently_attached === true) throw new XapiFailure("DEVICE_ALREADY_ATTACHED", String(ref));
    await this.dom0?.vifPlugged(this.dom0Vif(String(ref)));
    this.db.update("VIF", String(ref), { currently_attached: true });
    await this.answerDelay();
    return "";
  }

  async unplugVif(ref: unknown): Promise<string> {
    const vif = this.db.get("VIF", ref);
    if (vif.currently_attached !== true) throw new XapiFailure("DEVICE_ALREADY_DETACHED", String(ref));
    await this.dom0?.vifUnplugged(this.dom0Vif(String(ref)));
    this.db.update("VIF", String(ref), { currently_attached: false });
    await this.answerDelay();
    return "";
  }

  private async answerDelay(): Promise<void> {
    if (this.vifAnswerDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.vifAnswerDelayMs));
  }

  async startVm(ref: unknown, hostParam?: unknown): Promise<string> {
    const vm = this.db.get("VM", ref);
    if (vm.is_a_template === true) throw new XapiFailure("VM_IS_TEMPLATE", String(ref), "start");
    if (vm.power_state !== "Halted")
      throw new XapiFailure("VM_BAD_POWER_STATE", String(ref), "halted", String(vm.power_state).toLowerCase());
    const hostRef = hostParam === undefined ? (this.db.all("host")[0]?.[0] ?? NULL_REF) : hostParam;
    this.db.get("host", hostRef);
    const domid = this.nextDomid++;
    this.db.update("VM", String(ref), { power_state: "Running", domid, resident_on: hostRef });
    const host = this.db.get("host", hostRef);
    this.db.update("host", String(hostRef), { resident_VMs: [...(host.resident_VMs as string[]), ref] });
    for (const vif of vm.VIFs as string[]) {
      await this.dom0?.vifPlugged(this.dom0Vif(vif));
      this.db.update("VIF", vif, { currently_attached: true });
    }
    return "";
  }

  async shutdownVm(ref: unknown): Promise<string> {
    const vm = this.db.get("VM", ref);
    if (vm.power_state !== "Running")
      throw new XapiFailure("VM_BAD_POWER_STATE", String(ref), "running", String(vm.power_state).toLowerCase());
    for (const vif of vm.VIFs as string[]) {
      if (this.db.get("VIF", vif).currently_attached !== true) continue;
      await this.dom0?.vifUnplugged(this.dom0Vif(vif));
      this.db.update("VIF", vif, { currently_attached: false });
    }
    const hostRef = String(vm.resident_on);
    if (this.db.has("host", hostRef)) {
      const host = this.db.get("host", hostRef);
      this.db.update("host", hostRef, { resident_VMs: (host.resident_VMs as string[]).filter((item) => item !== ref) });
    }
    this.db.update("VM", String(ref), { power_state: "Halted", domid: -1, resident_on: NULL_REF });
    return "";
  }

  /** A reboot destroys the domain and builds a new one: same VM, new domid, new dom0 devices. */
  async rebootVm(ref: unknown): Promise<string> {
    await this.shutdownVm(ref);
    return this.startVm(ref);
  }

  /**
   * Live migration (to another host, or the same one): the VM keeps running but gets a new
   * domain, so every attached VIF's dom0 device is replaced by one with the new domid, and the
   * power state never leaves Running (one `mod` event: only the domid changes).
   */
  async migrateVm(ref: unknown, hostRef: unknown): Promise<string> {
    const vm = this.db.get("VM", ref);
    if (vm.power_state !== "Running")
      throw new XapiFailure("VM_BAD_POWER_STATE", String(ref), "running", String(vm.power_state).toLowerCase());
    this.db.get("host", hostRef);
    const attached = (vm.VIFs as string[]).filter((vif) => this.db.get("VIF", vif).currently_attached === true);
    for (const vif of attached) await this.dom0?.vifUnplugged(this.dom0Vif(vif));
    const from = String(vm.resident_on);
    if (this.db.has("host", from)) {
      this.db.update("host", from, { resident_VMs: (this.db.get("host", from).resident_VMs as string[]).filter((item) => item !== ref) });
    }
    this.db.update("VM", String(ref), { domid: this.nextDomid++, resident_on: hostRef });
    this.db.update("host", String(hostRef), { resident_VMs: [...(this.db.get("host", hostRef).resident_VMs as string[]), ref] });
    for (const vif of attached) await this.dom0?.vifPlugged(this.dom0Vif(vif));
    return "";
  }

  private dom0Vif(vifRef: string): Dom0Vif {
    const vif = this.db.get("VIF", vifRef);
    const vm = this.db.get("VM", vif.VM);
    const network = this.db.get("network", vif.network);
    return {
      vmUuid: String(vm.uuid),
      domid: Number(vm.domid),
      device: String(vif.device),
      ifname: `vif${vm.domid}.${vif.device}`,
      bridge: String(network.bridge),
      mac: String(vif.MAC),
      mtu: Number(vif.MTU) || 1500,
    };
  }

  private nextBridgeName(): string {
    const used = new Set(this.db.all("network").map(([, record]) => record.bridge));
    for (let index = 0; ; index++) if (!used.has(`xapi${index}`)) return `xapi${index}`;
  }
}

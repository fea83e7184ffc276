import { randomUUID } from "node:crypto";
import type { Database } from "./database.js";
import { NULL_REF } from "./datamodel.js";
import type { XapiSimulator } from "./simulator.js";

export type NetworkBackend = "bridge" | "openvswitch";

export interface SeedHost {
  nameLabel?: string;
  hostname?: string;
  /** `host.software_version.network_backend`, what decides whether ebtables can see guest traffic. */
  networkBackend?: NetworkBackend;
  productVersion?: string;
}

export interface SeedPif {
  host: string;
  /** dom0 device, e.g. `eth0`. */
  device: string;
  /** The physical network's bridge, e.g. `xenbr0`. */
  bridge: string;
  management?: boolean;
  mac?: string;
}

export interface SeedVm {
  nameLabel: string;
  uuid?: string;
  /** Default `hvm` (dom0 then names an emulated twin `tap<domid>.<n>` for each VIF); `pvh` and `pv` have none. */
  domainType?: "hvm" | "pvh" | "pv";
}

export interface SeedVif {
  vm: string;
  network: string;
  device: string;
  mac: string;
}

export interface Seeded {
  ref: string;
  uuid: string;
}

/**
 * Builds the world a test needs, directly in the database (no session, no call counted): a
 * pool, hosts with their control domain, physical PIFs with their bridges, VMs and VIFs.
 */
export class XapiSeed {
  constructor(
    private readonly db: Database,
    private readonly simulator: XapiSimulator,
  ) {}

  pool(): Seeded {
    const existing = this.db.all("pool")[0];
    if (existing !== undefined) return { ref: existing[0], uuid: String(existing[1].uuid) };
    const ref = this.db.create("pool", { name_label: "", name_description: "", master: NULL_REF, other_config: {} });
    return { ref, uuid: String(this.db.get("pool", ref).uuid) };
  }

  host(options: SeedHost = {}): Seeded {
    const pool = this.pool();
    const hostname = options.hostname ?? "xenhost";
    const ref = this.db.create("host", {
      name_label: options.nameLabel ?? hostname,
      hostname,
      address: "192.0.2.10",
      enabled: true,
      API_version_major: 2,
      API_version_minor: 21,
      API_version_vendor: "XenSource",
      software_version: {
        product_version: options.productVersion ?? "8.2.1",
        product_brand: "XCP-ng",
        platform_name: "XCP",
        xapi: "1.249",
        xen: "4.13.5",
        network_backend: options.networkBackend ?? "bridge",
      },
      capabilities: ["xen-3.0-x86_64", "hvm-3.0-x86_64"],
    });
    const dom0 = this.db.create("VM", {
      name_label: `Control domain on host: ${hostname}`,
      is_a_template: false,
      is_control_domain: true,
      power_state: "Running",
      domid: 0,
      resident_on: ref,
      user_version: 1,
      memory_static_max: 4294967296,
      memory_dynamic_max: 4294967296,
      memory_dynamic_min: 4294967296,
      memory_static_min: 4294967296,
      VCPUs_max: 2,
      VCPUs_at_startup: 2,
    });
    this.db.update("host", ref, { control_domain: dom0, resident_VMs: [dom0] });
    if (this.db.get("pool", pool.ref).master === NULL_REF) this.db.update("pool", pool.ref, { master: ref });
    return { ref, uuid: String(this.db.get("host", ref).uuid) };
  }

  /** A physical network with its bridge and the host's PIF on it. */
  physicalNetwork(options: SeedPif): { network: Seeded; pif: Seeded } {
    const network = this.db.create("network", {
      name_label: `Pool-wide network associated with ${options.device}`,
      bridge: options.bridge,
      other_config: {},
    });
    const pif = this.db.create("PIF", {
      device: options.device,
      network,
      host: options.host,
      MAC: options.mac ?? "02:00:00:00:00:01",
      MTU: 1500,
      VLAN: -1,
      physical: true,
      currently_attached: true,
      management: options.management ?? false,
      ip_configuration_mode: options.management ? "Static" : "None",
    });
    this.db.update("network", network, { PIFs: [pif] });
    const host = this.db.get("host", options.host);
    this.db.update("host", options.host, { PIFs: [...(host.PIFs as string[]), pif] });
    return {
      network: { ref: network, uuid: String(this.db.get("network", network).uuid) },
      pif: { ref: pif, uuid: String(this.db.get("PIF", pif).uuid) },
    };
  }

  /** A halted guest VM (as if installed from a template). */
  vm(options: SeedVm): Seeded {
    const ref = this.db.create("VM", {
      name_label: options.nameLabel,
      is_a_template: false,
      is_control_domain: false,
      power_state: "Halted",
      domid: -1,
      user_version: 1,
      memory_static_max: 268435456,
      memory_dynamic_max: 268435456,
      memory_dynamic_min: 268435456,
      memory_static_min: 134217728,
      VCPUs_max: 1,
      VCPUs_at_startup: 1,
      actions_after_shutdown: "destroy",
      actions_after_reboot: "restart",
      actions_after_crash: "restart",
      HVM_boot_policy: (options.domainType ?? "hvm") === "hvm" ? "BIOS order" : "",
      domain_type: options.domainType ?? "hvm",
    });
    if (options.uuid !== undefined) this.db.update("VM", ref, { uuid: options.uuid });
    return { ref, uuid: String(this.db.get("VM", ref).uuid) };
  }

  vif(options: SeedVif): Seeded {
    const ref = this.simulator.operations.createVif({
      device: options.device,
      network: options.network,
      VM: options.vm,
      MAC: options.mac,
      MTU: 1500,
      other_config: {},
      qos_algorithm_type: "",
      qos_algorithm_params: {},
    });
    return { ref, uuid: String(this.db.get("VIF", ref).uuid) };
  }

  /** A fresh UUID, for tests that name VMs themselves. */
  static uuid(): string {
    return randomUUID();
  }
}

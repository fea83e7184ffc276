/**
 * The XAPI records v6agent reads, typed with the data model's own field names (see
 * `../shared/reference/xapi/`; a unit test checks every name below against it). Only the fields
 * we use are typed; XAPI sends more.
 */
export type Ref = string & { readonly __xapiRef?: never };

export type VmPowerState = "Halted" | "Paused" | "Running" | "Suspended";

export interface VmRecord {
  uuid: string;
  name_label: string;
  power_state: VmPowerState;
  /** -1 while halted; a new value on every boot and migration. */
  domid: number;
  is_a_template: boolean;
  is_control_domain: boolean;
  is_a_snapshot: boolean;
  VIFs: Ref[];
  resident_on: Ref;
  domain_type: string;
  HVM_boot_policy: string;
}

export interface VifRecord {
  uuid: string;
  device: string;
  network: Ref;
  VM: Ref;
  MAC: string;
  MTU: number;
  currently_attached: boolean;
  other_config: Record<string, string>;
  locking_mode: string;
}

export interface NetworkRecord {
  uuid: string;
  name_label: string;
  bridge: string;
  MTU: number;
  PIFs: Ref[];
  VIFs: Ref[];
  other_config: Record<string, string>;
}

export interface PifRecord {
  uuid: string;
  device: string;
  network: Ref;
  host: Ref;
  /** -1 for a physical PIF, the tag for a VLAN's untagged PIF. */
  VLAN: number;
  physical: boolean;
  management: boolean;
  /** The VLAN whose untagged PIF this is (`OpaqueRef:NULL` otherwise). */
  VLAN_master_of: Ref;
}

export interface VlanRecord {
  uuid: string;
  tag: number;
  tagged_PIF: Ref;
  untagged_PIF: Ref;
}

export interface HostRecord {
  uuid: string;
  name_label: string;
  hostname: string;
  /** Includes `product_version` and `network_backend` (`bridge` or `openvswitch`). */
  software_version: Record<string, string>;
  API_version_major: number;
  API_version_minor: number;
  PIFs: Ref[];
}

/** Every class and field the wrapper reads or writes, checked against the data model by a unit test. */
export const FIELDS_USED = {
  VM: [
    "uuid",
    "name_label",
    "power_state",
    "domid",
    "is_a_template",
    "is_control_domain",
    "is_a_snapshot",
    "VIFs",
    "resident_on",
    "domain_type",
    "HVM_boot_policy",
  ],
  VIF: [
    "uuid",
    "device",
    "network",
    "VM",
    "MAC",
    "MTU",
    "currently_attached",
    "other_config",
    "locking_mode",
    "qos_algorithm_type",
    "qos_algorithm_params",
  ],
  network: ["uuid", "name_label", "name_description", "bridge", "MTU", "PIFs", "VIFs", "other_config", "tags"],
  PIF: ["uuid", "device", "network", "host", "VLAN", "physical", "management"],
  VLAN: ["uuid", "tag", "tagged_PIF", "untagged_PIF"],
  host: ["uuid", "name_label", "hostname", "software_version", "API_version_major", "API_version_minor", "PIFs"],
} as const;

/**
 * What the event-fed object cache keeps of each watched class: the fields above, plus the task
 * fields xen-api reads to settle an `Async.*` call. XAPI sends every field of a record (90 for a
 * VM); kept whole, 1,000 VMs and their VIFs were about 10 MB of the daemon's heap.
 */
export const CACHED_FIELDS = {
  ...FIELDS_USED,
  task: ["uuid", "status", "result", "error_info"],
} as const satisfies Readonly<Record<string, readonly string[]>>;

/** Every message the wrapper calls (class → messages), checked against the data model. */
export const MESSAGES_USED = {
  VM: ["start", "clean_shutdown", "hard_shutdown", "get_allowed_VIF_devices"],
  VIF: ["plug", "unplug"],
  pool: ["create_VLAN_from_PIF"],
} as const;

/** Implicit messages XAPI generates for every class (constructors and accessors), not listed in the data model. */
export const IMPLICIT_MESSAGES_USED = [
  "VIF.create",
  "VIF.destroy",
  "network.create",
  "network.destroy",
  "network.add_to_other_config",
  "network.remove_from_other_config",
] as const;

export const NULL_REF = "OpaqueRef:NULL";

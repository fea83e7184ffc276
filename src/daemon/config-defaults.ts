/** The default of every configuration field that has one: read by the parser and by the reference table. */
export const CONFIG_DEFAULTS = {
  heartbeatSeconds: 15,
  timeoutSeconds: 45,
  insecure: false,
  hypervisorKind: "kvm",
  libvirtUri: "qemu:///system",
  domainType: "kvm",
  xapiUsername: "root",
  allowSelfSigned: false,
  firewallBackend: "auto",
  stateDir: "/var/lib/v6agent",
  logLevel: "info",
  reconcileSeconds: 60,
} as const;

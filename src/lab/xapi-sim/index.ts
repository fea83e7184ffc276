/** The XAPI simulator (tests and `v6agent lab --hypervisor xenserver`). */
export { Database, type XapiRecord } from "./database.js";
export { classSpec, dataModel, fieldSpec } from "./datamodel.js";
export { type Dom0Network, type Dom0Vif, type Dom0Vlan, NetnsDom0, type NetnsDom0Options } from "./dom0.js";
export { XapiFailure } from "./failure.js";
export { type NetworkBackend, XapiSeed } from "./seed.js";
export { type Fault, type RecordedCall, type RunningXapiSimulator, startXapiSimulator, type XapiSimulatorOptions } from "./server.js";
export { XapiSimulator } from "./simulator.js";

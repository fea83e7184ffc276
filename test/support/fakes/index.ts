/** In-memory stand-ins for the agent core's dependencies, for fast unit tests without root. */
export { FakeFirewall } from "./firewall.js";
export { FakeHypervisor, FakeNetworks, fakeBackend } from "./hypervisor.js";
export { Faults, Journal } from "./journal.js";
export { MemoryStore } from "./store.js";

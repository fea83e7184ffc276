// Tests use the lab's namespace helper: one implementation for the lab and the tests.
export { deleteNamespace, liveNamespaces, Netns, vethBetween, withNetns } from "../../src/lab/netns.js";

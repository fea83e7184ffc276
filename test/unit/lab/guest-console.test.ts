import { describe, expect, it } from "vitest";
import { parseGuestConsole } from "../../../src/lab/guest-image.js";

describe("parseGuestConsole", () => {
  it("takes the latest complete net line and ignores one still being written", () => {
    const text = [
      "V6GUEST net eth0 addrs=2001:db8::a routers=fe80::1",
      "[    3.2] some kernel message",
      "V6GUEST net eth0 addrs=2001:db8::a routers=fe80::1",
      "V6GUEST net eth0 addrs=2001:db8::a rout",
    ].join("\n");
    const parsed = parseGuestConsole(text);
    expect(parsed.network.get("eth0")).toEqual({ addresses: ["2001:db8::a"], routers: ["fe80::1"] });
    expect([...(parsed.everRouters.get("eth0") ?? [])]).toEqual(["fe80::1"]);
  });

  it("counts the last line once its newline has arrived", () => {
    const parsed = parseGuestConsole("V6GUEST net eth0 addrs=- routers=-\nV6GUEST net eth0 addrs=2001:db8::b routers=fe80::1\n");
    expect(parsed.network.get("eth0")).toEqual({ addresses: ["2001:db8::b"], routers: ["fe80::1"] });
  });
});

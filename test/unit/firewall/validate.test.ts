import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../../src/errors.js";
import type { GuestPort } from "../../../src/firewall/model.js";
import { validateBridge, validatePort, validateState } from "../../../src/firewall/validate.js";
import { bridge, port } from "./fixtures.js";

function fieldOf(action: () => unknown): string | undefined {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    return (error as InvalidArgumentError).field;
  }
  return undefined;
}

const with_ = (patch: Record<string, unknown>) => ({ ...port, ...patch }) as unknown as GuestPort;

describe("firewall validation", () => {
  it("canonicalises a good port", () => {
    const good = validatePort(with_({ mac: "52-54-00-12-34-56", ipv6: ["2001:DB8:1:1:0:0:0:10", "2001:db8:1:1::10"] }));
    expect(good.mac).toBe("52:54:00:12:34:56");
    expect(good.ipv6).toEqual(["2001:db8:1:1::10"]);
  });

  it.each([
    [{ mac: "52:54:00:12:34" }, "port.mac"],
    [{ mac: "01:00:5e:00:00:01" }, "port.mac"],
    [{ device: "vnet1;reboot" }, "port.device"],
    [{ device: "vnet$(id)" }, "port.device"],
    [{ device: "a-very-long-device-name" }, "port.device"],
    [{ bridge: "br 0" }, "port.bridge"],
    [{ linkLocals: ["2001:db8:1:1::1"] }, "port.linkLocals[0]"],
    [{ ipv6: ["2001:db8:9:9::1"], network: "2001:db8:1:1::/64" }, "port.ipv6[0]"],
    [{ ipv6: ["2001:db8:1:1::1", "2001:db8:2:2::1"] }, "port.ipv6[1]"],
    [{ ipv6: ["fe80::1"] }, "port.ipv6[0]"],
    [{ ipv6: ["not-an-address"] }, "port.ipv6[0]"],
    [{ network: "2001:db8:1::/48" }, "port.network"],
    [{ ipv4: ["192.0.2.300"] }, "port.ipv4[0]"],
  ])("refuses %j naming %s", (patch, field) => {
    expect(fieldOf(() => validatePort(with_(patch)))).toBe(field);
  });

  it("refuses bad bridges and inconsistent states", () => {
    expect(fieldOf(() => validateBridge({ ...bridge, guestPortPatterns: ['vnet";*'] }))).toBe("bridge.guestPortPatterns[0]");
    expect(fieldOf(() => validateBridge({ ...bridge, trustedPorts: ["eth0 up"] } as never))).toBe("bridge.trustedPorts[0]");
    expect(fieldOf(() => validateState({ bridges: [], ports: [port] }))).toBe("ports[0].bridge");
    expect(fieldOf(() => validateState({ bridges: [bridge], ports: [port, port] }))).toBe("ports[1].device");
    expect(fieldOf(() => validateState({ bridges: [bridge], ports: [with_({ device: "uplink0" })] }))).toBe("ports[0].device");
  });
});

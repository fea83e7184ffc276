import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { macBytes, parseMac } from "../../../src/addressing/index.js";
import { InvalidArgumentError } from "../../../src/errors.js";

describe("parseMac", () => {
  it.each([
    ["52:54:00:12:34:56", "52:54:00:12:34:56"],
    ["52-54-00-12-34-56", "52:54:00:12:34:56"],
    ["52:54:00:AB:CD:EF", "52:54:00:ab:cd:ef"],
    ["FE:FF:FF:FF:FF:FF", "fe:ff:ff:ff:ff:ff"],
  ])("normalises %s", (input, expected) => {
    expect(parseMac(input)).toBe(expected);
  });

  it.each([
    ["zz:54:00:12:34:56", /not a MAC address/],
    ["52:54:00:12:34", /not a MAC address/],
    ["52:54:00:12:34:56:78", /not a MAC address/],
    ["52:54-00:12:34:56", /not a MAC address/],
    ["5254.0012.3456", /not a MAC address/],
    ["52:54:00:12:34:56; rm -rf /", /not a MAC address/],
    ["", /not a MAC address/],
    ["01:00:5e:00:00:01", /multicast MAC/],
    ["33:33:00:00:00:01", /multicast MAC/],
    ["ff:ff:ff:ff:ff:ff", /multicast MAC/],
    ["00:00:00:00:00:00", /not a usable guest MAC/],
  ])("refuses %s with a precise message", (input, message) => {
    expect(() => parseMac(input, "nics[0].mac")).toThrow(message);
    expect(() => parseMac(input, "nics[0].mac")).toThrow(/^nics\[0\]\.mac: /);
  });

  it("refuses non-strings and names the field", () => {
    const error = (() => {
      try {
        parseMac(42, "mac");
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).field).toBe("mac");
    expect((error as InvalidArgumentError).code).toBe("invalid_argument");
  });

  it("round-trips any unicast MAC through bytes, separators and case", () => {
    const unicastBytes = fc
      .uint8Array({ minLength: 6, maxLength: 6 })
      .map((bytes) => {
        bytes[0] = (bytes[0] as number) & 0xfe;
        return bytes;
      })
      .filter((bytes) => bytes.some((byte) => byte !== 0));
    fc.assert(
      fc.property(unicastBytes, fc.constantFrom(":", "-"), fc.boolean(), (bytes, separator, upper) => {
        const text = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join(separator);
        const mac = parseMac(upper ? text.toUpperCase() : text);
        expect(Array.from(macBytes(mac))).toEqual(Array.from(bytes));
        expect(parseMac(mac)).toBe(mac);
      }),
    );
  });
});

import { describe, expect, it } from "vitest";
import { run } from "../../../src/exec.js";
import { Netns, vethBetween, withNetns } from "../../support/netns.js";
import { skipReason } from "../../support/requirements.js";

const skip = skipReason({ root: true, commands: ["ip", "ping"] });

async function namespaceExists(name: string): Promise<boolean> {
  const { stdout } = await run("ip", ["-json", "netns", "list"]);
  const list = JSON.parse(stdout.trim() === "" ? "[]" : stdout) as { name: string }[];
  return list.some((entry) => entry.name === name);
}

describe.skipIf(skip !== undefined)("netns test helper", () => {
  it("bridges two veth ports inside a namespace and pings across it", async () => {
    let names: string[] = [];
    await withNetns(["v6h", "v6g", "v6g"], async (host, guestA, guestB) => {
      names = [host.name, guestA.name, guestB.name];
      await host.exec("ip", ["link", "add", "br0", "type", "bridge"]);
      await host.exec("ip", ["link", "set", "br0", "up"]);
      await vethBetween(host, "porta", guestA, "eth0");
      await vethBetween(host, "portb", guestB, "eth0");
      await host.exec("ip", ["link", "set", "porta", "master", "br0"]);
      await host.exec("ip", ["link", "set", "portb", "master", "br0"]);
      await guestA.exec("ip", ["-6", "addr", "add", "2001:db8:ff::a/64", "dev", "eth0", "nodad"]);
      await guestB.exec("ip", ["-6", "addr", "add", "2001:db8:ff::b/64", "dev", "eth0", "nodad"]);

      const ports = await host.ipJson<{ ifname: string; master?: string }[]>(["link", "show", "master", "br0"]);
      expect(ports.map((port) => port.ifname).sort()).toEqual(["porta", "portb"]);

      const ping = await guestA.exec("ping", ["-6", "-c", "2", "-i", "0.2", "-W", "2", "2001:db8:ff::b"]);
      expect(ping.stdout).toMatch(/2 received/);

      // Nothing leaked into the host's own namespace.
      const { stdout } = await run("ip", ["-json", "link", "show"]);
      const hostLinks = (JSON.parse(stdout) as { ifname: string }[]).map((link) => link.ifname);
      expect(hostLinks).not.toContain("porta");
      expect(hostLinks).not.toContain("br0");
    });
    for (const name of names) expect(await namespaceExists(name)).toBe(false);
  });

  it("deletes the namespace when the body throws", async () => {
    let name = "";
    await expect(
      withNetns(["v6f"], async (netns) => {
        name = netns.name;
        expect(await namespaceExists(name)).toBe(true);
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(await namespaceExists(name)).toBe(false);
  });

  it("gives every namespace a unique name", async () => {
    const a = await Netns.create("v6u");
    const b = await Netns.create("v6u");
    try {
      expect(a.name).not.toBe(b.name);
    } finally {
      await a.destroy();
      await b.destroy();
    }
  });
});

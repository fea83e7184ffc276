import { describe, expect, it } from "vitest";
import { ensureBridge, findLink, readIpv6Sysctl, removeBridge } from "../../../src/hostnet/index.js";
import { type Netns, vethBetween, withNetns } from "../../support/netns.js";
import { skipReason } from "../../support/requirements.js";

const skip = skipReason({ root: true, commands: ["ip", "sysctl", "ping"] });

/** Each test's "host" is a namespace; its uplink is a veth whose peer sits in a "switch" namespace. */
async function linkNames(netns: Netns): Promise<string[]> {
  return (await netns.ipJson<{ ifname: string }[]>(["link", "show"])).map((link) => link.ifname).sort();
}

async function kernelHasVlans(netns: Netns): Promise<boolean> {
  await netns.exec("ip", ["link", "add", "probe0", "type", "veth", "peer", "name", "probe1"]);
  const result = await netns.exec("ip", ["link", "add", "link", "probe0", "name", "probe0.7", "type", "vlan", "id", "7"], {
    okExitCodes: [0, 1, 2],
  });
  await netns.exec("ip", ["link", "del", "probe0"], { okExitCodes: [0, 1] });
  return result.exitCode === 0;
}

describe.skipIf(skip !== undefined)("hostnet bridges", () => {
  it("makes an untagged bridge idempotently, with host IPv6 off, that bridges guests to the uplink", async () => {
    await withNetns(["v6hh", "v6hs", "v6hg"], async (host, switchNs, guest) => {
      const options = { netns: host.name };
      await vethBetween(host, "uplink0", switchNs, "eth0");
      const first = await ensureBridge({ bridge: "v6net0123456789", uplink: "uplink0", mtu: 1400 }, options);
      expect(first.changes).toContain("created bridge v6net0123456789");
      const second = await ensureBridge({ bridge: "v6net0123456789", uplink: "uplink0", mtu: 1400 }, options);
      expect(second.changes).toEqual([]);

      const bridge = await findLink("v6net0123456789", options);
      expect(bridge).toMatchObject({ mtu: 1400, linkinfo: { info_kind: "bridge" } });
      expect(bridge?.flags).toContain("UP");
      expect((await findLink("uplink0", options))?.master).toBe("v6net0123456789");
      for (const key of ["accept_ra", "autoconf"] as const) expect(await readIpv6Sysctl("v6net0123456789", key, options)).toBe("0");
      expect(await readIpv6Sysctl("v6net0123456789", "disable_ipv6", options)).toBe("1");

      // A guest port on the bridge reaches the switch side; the host itself has no IPv6 on it.
      await vethBetween(host, "guest0", guest, "eth0");
      await host.exec("ip", ["link", "set", "guest0", "master", "v6net0123456789"]);
      await guest.exec("ip", ["-6", "addr", "add", "2001:db8:77::2/64", "dev", "eth0", "nodad"]);
      await switchNs.exec("ip", ["-6", "addr", "add", "2001:db8:77::1/64", "dev", "eth0", "nodad"]);
      const ping = await guest.exec("ping", ["-6", "-c", "2", "-i", "0.2", "-W", "3", "2001:db8:77::1"]);
      expect(ping.stdout).toMatch(/2 received/);
      const addresses = await host.ipJson<{ addr_info: unknown[] }[]>(["-6", "addr", "show", "dev", "v6net0123456789"]);
      expect(addresses.flatMap((entry) => entry.addr_info)).toEqual([]);

      // The MTU converges on a later ensure.
      const changed = await ensureBridge({ bridge: "v6net0123456789", uplink: "uplink0", mtu: 1300 }, options);
      expect(changed.changes).toEqual(["set MTU 1300 on v6net0123456789"]);

      // Not removed while a guest port remains; removed (uplink released, kept) once it is gone.
      await expect(removeBridge({ bridge: "v6net0123456789", uplink: "uplink0" }, options)).rejects.toMatchObject({
        code: "conflict",
        message: expect.stringContaining("guest0"),
      });
      expect(await findLink("v6net0123456789", options)).toBeDefined();
      await host.exec("ip", ["link", "del", "guest0"]);
      expect(await removeBridge({ bridge: "v6net0123456789", uplink: "uplink0" }, options)).toBe(true);
      expect(await removeBridge({ bridge: "v6net0123456789", uplink: "uplink0" }, options)).toBe(false);
      expect(await findLink("v6net0123456789", options)).toBeUndefined();
      expect((await findLink("uplink0", options))?.master).toBeUndefined();
    });
  });

  it("refuses bad input with the field named and makes nothing", async () => {
    await withNetns(["v6hb"], async (host) => {
      const options = { netns: host.name };
      // This kernel has no dummy links; veth pairs stand in.
      await host.exec("ip", ["link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1"]);
      await host.exec("ip", ["link", "add", "notabridge", "type", "veth", "peer", "name", "notabridge1"]);
      const before = await linkNames(host);
      await expect(ensureBridge({ bridge: "sixteen-bytes-br" }, options)).rejects.toMatchObject({
        code: "invalid_argument",
        field: "bridge",
      });
      await expect(ensureBridge({ bridge: "br;reboot" }, options)).rejects.toMatchObject({ code: "invalid_argument", field: "bridge" });
      for (const vlan of [0, 4095]) {
        await expect(ensureBridge({ bridge: "v6vlanx", uplink: "uplink0", vlan }, options)).rejects.toMatchObject({
          code: "invalid_argument",
          field: "vlan",
          message: expect.stringContaining("1 to 4094"),
        });
      }
      await expect(ensureBridge({ bridge: "v6vlan5", vlan: 5 }, options)).rejects.toMatchObject({ field: "uplink" });
      await expect(ensureBridge({ bridge: "v6br1", mtu: 1000 }, options)).rejects.toMatchObject({ field: "mtu" });
      await expect(ensureBridge({ bridge: "v6br1", uplink: "nosuch0" }, options)).rejects.toMatchObject({
        code: "not_found",
        field: "uplink",
      });
      await expect(ensureBridge({ bridge: "notabridge" }, options)).rejects.toMatchObject({ code: "conflict", field: "bridge" });
      await expect(removeBridge({ bridge: "notabridge" }, options)).rejects.toMatchObject({ code: "conflict" });
      expect(await linkNames(host)).toEqual(before);
    });
  });

  it("puts a tagged network on a VLAN sub-interface, or undoes everything where the kernel has no 802.1Q", async () => {
    await withNetns(["v6hv", "v6hw", "v6hx"], async (host, switchNs, guest) => {
      const options = { netns: host.name };
      await vethBetween(host, "uplink0", switchNs, "eth0");
      const before = await linkNames(host);
      if (!(await kernelHasVlans(host))) {
        // This kernel (e.g. a Firecracker guest without CONFIG_VLAN_8021Q) cannot tag: the
        // error says so and the bridge made before the failure is gone again.
        await expect(ensureBridge({ bridge: "v6vlan100", uplink: "uplink0", vlan: 100 }, options)).rejects.toMatchObject({
          code: "host_failure",
          field: "vlan",
          message: expect.stringMatching(/creating VLAN 100 on uplink0 as uplink0\.100 failed/),
        });
        expect(await linkNames(host)).toEqual(before);
        return;
      }
      const state = await ensureBridge({ bridge: "v6vlan100", uplink: "uplink0", vlan: 100 }, options);
      expect(state.uplinkPort).toBe("uplink0.100");
      expect(await findLink("uplink0.100", options)).toMatchObject({
        master: "v6vlan100",
        linkinfo: { info_kind: "vlan", info_data: { id: 100 } },
      });
      expect((await ensureBridge({ bridge: "v6vlan100", uplink: "uplink0", vlan: 100 }, options)).changes).toEqual([]);
      // Tagged end to end: the switch side only answers on its own VLAN 100 interface.
      await switchNs.exec("ip", ["link", "add", "link", "eth0", "name", "eth0.100", "type", "vlan", "id", "100"]);
      await switchNs.exec("ip", ["link", "set", "eth0.100", "up"]);
      await switchNs.exec("ip", ["-6", "addr", "add", "2001:db8:100::1/64", "dev", "eth0.100", "nodad"]);
      await vethBetween(host, "guest0", guest, "eth0");
      await host.exec("ip", ["link", "set", "guest0", "master", "v6vlan100"]);
      await guest.exec("ip", ["-6", "addr", "add", "2001:db8:100::2/64", "dev", "eth0", "nodad"]);
      expect((await guest.exec("ping", ["-6", "-c", "2", "-i", "0.2", "-W", "3", "2001:db8:100::1"])).stdout).toMatch(/2 received/);
      await host.exec("ip", ["link", "del", "guest0"]);
      expect(await removeBridge({ bridge: "v6vlan100", uplink: "uplink0", vlan: 100 }, options)).toBe(true);
      expect(await linkNames(host)).toEqual(before);
    });
  });
});

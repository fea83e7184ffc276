import { createServer as createHttpsServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hypervisorProbe } from "../../../src/daemon/diagnose.js";
import { bridgeChecks } from "../../../src/diag/bridges.js";
import type { DiagNetwork } from "../../../src/diag/check.js";
import { hypervisorCheck } from "../../../src/diag/hypervisor.js";
import { kernelChecks } from "../../../src/diag/kernel.js";
import { mgmtChecks } from "../../../src/diag/mgmt.js";
import { sysctlChecks } from "../../../src/diag/sysctl.js";
import { toolChecks } from "../../../src/diag/tools.js";
import { run } from "../../../src/exec.js";
import { KvmHypervisor } from "../../../src/hypervisor/kvm/kvm-hypervisor.js";
import { XenServerHypervisor } from "../../../src/hypervisor/xenserver/index.js";
import { startXapiSimulator } from "../../../src/lab/xapi-sim/index.js";
import { withNetns } from "../../support/netns.js";
import { skipReason } from "../../support/requirements.js";
import { makeTlsMaterial, type TlsMaterial } from "../../support/tls-material.js";

const skip = skipReason({ root: true, commands: ["ip", "nft", "openssl", "ebtables"] });

describe.skipIf(skip !== undefined)("host diagnostics", () => {
  it("proves the kernel features by using them", async () => {
    const checks = await kernelChecks({ needBrNetfilter: true });
    expect(checks.map((c) => [c.name, c.status])).toEqual([
      ["kernel.bridge", "ok"],
      ["kernel.nftables-bridge", "ok"],
      ["kernel.br_netfilter", "ok"],
      ["kernel.rcu_expedited", "ok"],
    ]);
  });

  it("reports tool versions and the xtables flavour", async () => {
    const { checks, versions } = await toolChecks("xtables");
    expect(checks.every((c) => c.status === "ok")).toBe(true);
    expect(versions.find((v) => v.tool === "ebtables")?.flavour).toMatch(/^(nf_tables|legacy)$/);
    expect(versions.find((v) => v.tool === "nft")?.version).toMatch(/^\d+\.\d+/);
  });

  it("fails a device that accepts RAs (even with IPv6 off), warns on host IPv6 left on, and names the fix", async () => {
    await withNetns(["v6d"], async (host) => {
      for (const name of ["bropen", "broff", "brnora", "brgood"]) await host.exec("ip", ["link", "add", name, "type", "bridge"]);
      // A dotted name (as a VLAN sub-interface has) must not be read as sysctl key separators.
      await host.exec("ip", ["link", "add", "up0.7", "type", "veth", "peer", "name", "up0p"]);
      await host.sysctl("net.ipv6.conf.bropen.accept_ra", "1");
      await host.sysctl("net.ipv6.conf.broff.disable_ipv6", "1");
      await host.sysctl("net.ipv6.conf.brnora.accept_ra", "0");
      await host.sysctl("net.ipv6.conf.brnora.autoconf", "0");
      for (const [key, value] of Object.entries({ accept_ra: "0", autoconf: "0", disable_ipv6: "1" })) {
        await host.exec("sysctl", ["-q", "-w", `net/ipv6/conf/brgood/${key}=${value}`]);
      }
      await host.exec("sysctl", ["-q", "-w", "net/ipv6/conf/up0.7/accept_ra=2", "net/ipv6/conf/up0.7/autoconf=0"]);
      const checks = await sysctlChecks(
        [
          { device: "bropen", role: "bridge" },
          { device: "broff", role: "bridge" },
          { device: "brnora", role: "bridge" },
          { device: "brgood", role: "bridge" },
          { device: "up0.7", role: "uplink" },
          { device: "gone0", role: "port" },
        ],
        host.name,
      );
      expect(checks.map((c) => c.status)).toEqual(["fail", "fail", "warn", "ok", "fail", "fail"]);
      expect(checks[0]?.fix).toBe(`ip netns exec ${host.name} sysctl -w net/ipv6/conf/bropen/accept_ra=0 net/ipv6/conf/bropen/autoconf=0`);
      expect(checks[1]?.message).toMatch(/as soon as IPv6 is re-enabled/);
      expect(checks[4]?.message).toMatch(/accept_ra=2/);
      expect(checks[4]?.fix).toBe(`ip netns exec ${host.name} sysctl -w net/ipv6/conf/up0.7/accept_ra=0`);
      expect(checks[5]?.message).toMatch(/gone0 does not exist/);

      // The fixes are commands: run them as printed and the failures turn ok (or warn, IPv6 on).
      for (const check of checks.slice(0, 5)) {
        if (check.status !== "fail" || check.fix === undefined) continue;
        const [command, ...args] = check.fix.split(" ");
        await run(command as string, args);
      }
      const after = await sysctlChecks(
        [
          { device: "bropen", role: "bridge" },
          { device: "broff", role: "bridge" },
          { device: "up0.7", role: "uplink" },
        ],
        host.name,
      );
      expect(after.map((c) => c.status)).toEqual(["warn", "ok", "warn"]);
    });
  });

  it("fails a missing guest port, but not a missing emulated twin (an HVM guest's tap, gone once PV drivers load)", async () => {
    await withNetns(["v6dg"], async (netns) => {
      const checks = await sysctlChecks(
        [
          { device: "vif7.0", role: "port" },
          { device: "tap7.0", role: "emulated port" },
        ],
        netns.name,
      );
      expect(checks.map((c) => [c.name, c.status, c.message])).toEqual([
        ["sysctl.vif7.0", "fail", "port vif7.0 does not exist"],
        ["sysctl.tap7.0", "ok", "emulated port tap7.0 is not present (QEMU's NIC goes once the guest's PV drivers load)"],
      ]);
    });
  });

  it("checks each managed bridge, its uplink and VLAN, and the printed fixes repair them", async () => {
    await withNetns(["v6b"], async (host) => {
      for (const bridge of ["brok", "brdown", "brloose", "brvlan"]) await host.exec("ip", ["link", "add", bridge, "type", "bridge"]);
      for (const [uplink, peer] of [
        ["upok", "upokp"],
        ["uploose", "uploosep"],
        ["up0.100", "up0p"],
      ]) {
        await host.exec("ip", ["link", "add", uplink as string, "type", "veth", "peer", "name", peer as string]);
      }
      await host.exec("ip", ["link", "set", "upok", "master", "brok", "up"]);
      await host.exec("ip", ["link", "set", "uploose", "up"]);
      // A tagged network's uplink that is not a VLAN device (this kernel has no 802.1Q anyway).
      await host.exec("ip", ["link", "set", "up0.100", "master", "brvlan", "up"]);
      for (const bridge of ["brok", "brloose", "brvlan"]) await host.exec("ip", ["link", "set", bridge, "up"]);
      const network = (bridge: string, trusted: string[], vlan?: number): DiagNetwork => ({
        networkId: `net-${bridge}`,
        prefix: "2001:db8:b::/64",
        bridge,
        trustedPorts: trusted,
        vlan,
      });
      const networks = [
        network("brok", ["upok"]),
        network("brdown", []),
        network("brloose", ["uploose"]),
        network("brvlan", ["up0.100"], 100),
        network("brgone", []),
      ];
      const checks = await bridgeChecks(networks, host.name);
      expect(checks.map((c) => [c.name, c.status])).toEqual([
        ["bridge.brok", "ok"],
        ["bridge.brdown", "fail"],
        ["bridge.brloose", "fail"],
        ["bridge.brvlan", "fail"],
        ["bridge.brgone", "fail"],
      ]);
      expect(checks[0]?.message).toBe("network net-brok (2001:db8:b::/64): bridge brok up, uplink upok, 0 guest port(s)");
      expect(checks[1]?.fix).toBe(`ip netns exec ${host.name} ip link set brdown up`);
      expect(checks[2]?.message).toMatch(/uplink uploose is on no bridge, not on brloose: the router is unreachable/);
      expect(checks[2]?.fix).toBe(`ip netns exec ${host.name} ip link set uploose master brloose`);
      expect(checks[3]?.message).toMatch(/uplink up0\.100 is not VLAN 100 \(kind veth, id none\)/);
      expect(checks[4]?.message).toMatch(/bridge brgone does not exist/);
      for (const fix of [checks[1]?.fix, checks[2]?.fix]) {
        const [command, ...args] = (fix as string).split(" ");
        await run(command as string, args);
      }
      const after = await bridgeChecks(networks.slice(0, 3), host.name);
      expect(after.map((c) => c.status)).toEqual(["ok", "ok", "ok"]);
    });
  });

  it("fails a hypervisor it cannot log in to, naming the target and the fix", async () => {
    const sim = await startXapiSimulator();
    try {
      const backend = new XenServerHypervisor({ url: sim.url, auth: { user: "root", password: "wrong" } });
      const config = { kind: "xenserver", xapi: { url: sim.url, username: "root", passwordFile: "/x", allowSelfSigned: false } } as const;
      const refused = await hypervisorCheck(hypervisorProbe(config, backend, true));
      await refused.close();
      expect(refused.check).toMatchObject({ name: "hypervisor", status: "fail" });
      expect(refused.check.message).toMatch(new RegExp(`^cannot use XAPI root@${sim.url}: .*SESSION_AUTHENTICATION_FAILED`));
      expect(refused.check.fix).toMatch(/hypervisor\.xapi\.url, username and passwordFile/);
      const good = new XenServerHypervisor({ url: sim.url, auth: { user: "root", password: "xenroot" } });
      const accepted = await hypervisorCheck(hypervisorProbe(config, good, true));
      await accepted.close();
      expect(accepted.check.status).toBe("ok");
      const kvm = await hypervisorCheck(
        hypervisorProbe(
          { kind: "kvm", uri: "test:///nonexistent-v6diag", domainType: "kvm" },
          new KvmHypervisor({ uri: "test:///nonexistent-v6diag" }),
          true,
        ),
      );
      await kvm.close();
      expect(kvm.check).toMatchObject({ status: "fail", fix: expect.stringMatching(/virsh -c test:\/\/\/nonexistent-v6diag list/) });
    } finally {
      await sim.close();
    }
  });

  describe("management server connectivity", () => {
    let pki: TlsMaterial;
    let server: Server;
    let expiredServer: Server;
    let url: string;
    let expiredUrl: string;

    async function listen(cert: string, key: string): Promise<{ server: Server; url: string }> {
      const created = createHttpsServer({ cert, key }, (_request, response) => {
        response.writeHead(426, { Date: new Date(Date.now() + 120_000).toUTCString() });
        response.end();
      });
      await new Promise<void>((resolve) => created.listen(0, "127.0.0.1", resolve));
      return { server: created, url: `wss://127.0.0.1:${(created.address() as AddressInfo).port}/agent` };
    }

    beforeAll(async () => {
      pki = makeTlsMaterial();
      ({ server, url } = await listen(pki.serverCert, pki.serverKey));
      ({ server: expiredServer, url: expiredUrl } = await listen(pki.expiredServerCert, pki.expiredServerKey));
    });

    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
      await new Promise((resolve) => expiredServer.close(resolve));
      pki.cleanup();
    });

    it("checks DNS, TCP, the chain against the pinned CA, expiry and clock skew", async () => {
      const checks = await mgmtChecks({ url, caFile: join(pki.dir, "ca.pem") });
      const byKind = Object.fromEntries(checks.map((c) => [c.name.split(".")[1], c]));
      expect(byKind.dns?.status).toBe("ok");
      expect(byKind.tcp?.status).toBe("ok");
      expect(byKind.tls?.status).toBe("ok");
      expect(byKind["cert-expiry"]?.status).toBe("warn");
      expect(byKind["cert-expiry"]?.message).toMatch(/expires in [01] day/);
      expect(byKind.clock?.status).toBe("warn");
      expect(byKind.clock?.message).toMatch(/clock skew of 1[12]\d s/);
    });

    it("fails a server whose certificate does not chain to the pinned CA", async () => {
      const checks = await mgmtChecks({ url, caFile: join(pki.dir, "rogue-ca.pem") });
      const tls = checks.find((c) => c.name.startsWith("mgmt.tls."));
      expect(tls?.status).toBe("fail");
      expect(tls?.fix).toMatch(/management\.caFile/);
    });

    it("fails an expired certificate", async () => {
      const checks = await mgmtChecks({ url: expiredUrl, caFile: join(pki.dir, "ca.pem") });
      expect(checks.find((c) => c.name.startsWith("mgmt.tls."))?.message).toMatch(/expired/i);
      expect(checks.find((c) => c.name.startsWith("mgmt.cert-expiry."))?.status).toBe("fail");
    });

    it("fails a closed port and an unresolvable name", async () => {
      const closed = await mgmtChecks({ url: "ws://127.0.0.1:1/agent" });
      expect(closed.map((c) => c.status)).toEqual(["ok", "fail"]);
      const nowhere = await mgmtChecks({ url: "wss://no-such-host.invalid/agent" });
      expect(nowhere[0]?.status).toBe("fail");
      expect((await mgmtChecks({ url: "http://x" }))[0]?.message).toMatch(/not a ws:\/\/ or wss:\/\/ URL/);
    });
  });
});

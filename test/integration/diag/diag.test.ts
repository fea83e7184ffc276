import { rmSync } from "node:fs";
import { createServer as createHttpsServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kernelChecks } from "../../../src/diag/kernel.js";
import { mgmtChecks } from "../../../src/diag/mgmt.js";
import { sysctlChecks } from "../../../src/diag/sysctl.js";
import { toolChecks } from "../../../src/diag/tools.js";
import { withNetns } from "../../support/netns.js";
import { skipReason } from "../../support/requirements.js";
import { createTestPki, type TestPki } from "../../support/tls.js";

const skip = skipReason({ root: true, commands: ["ip", "nft", "openssl", "ebtables"] });

describe.skipIf(skip !== undefined)("host diagnostics", () => {
  it("proves the kernel features by using them", async () => {
    const checks = await kernelChecks({ needBrNetfilter: true });
    expect(checks.map((c) => [c.name, c.status])).toEqual([
      ["kernel.bridge", "ok"],
      ["kernel.nftables-bridge", "ok"],
      ["kernel.br_netfilter", "ok"],
    ]);
  });

  it("reports tool versions and the xtables flavour", async () => {
    const { checks, versions } = await toolChecks("xtables");
    expect(checks.every((c) => c.status === "ok")).toBe(true);
    expect(versions.find((v) => v.tool === "ebtables")?.flavour).toMatch(/^(nf_tables|legacy)$/);
    expect(versions.find((v) => v.tool === "nft")?.version).toMatch(/^\d+\.\d+/);
  });

  it("fails a bridge that accepts RAs and names the fix; passes one with IPv6 off or RAs refused", async () => {
    await withNetns(["v6d"], async (host) => {
      for (const name of ["bropen", "broff", "brnora"]) await host.exec("ip", ["link", "add", name, "type", "bridge"]);
      await host.sysctl("net.ipv6.conf.bropen.accept_ra", "1");
      await host.sysctl("net.ipv6.conf.broff.disable_ipv6", "1");
      await host.sysctl("net.ipv6.conf.brnora.accept_ra", "0");
      await host.sysctl("net.ipv6.conf.brnora.autoconf", "0");
      const checks = await sysctlChecks(
        [
          { device: "bropen", role: "bridge" },
          { device: "broff", role: "bridge" },
          { device: "brnora", role: "bridge" },
          { device: "gone0", role: "port" },
        ],
        host.name,
      );
      expect(checks.map((c) => c.status)).toEqual(["fail", "ok", "ok", "fail"]);
      expect(checks[0]?.fix).toBe("sysctl -w net.ipv6.conf.bropen.accept_ra=0 net.ipv6.conf.bropen.autoconf=0");
      expect(checks[3]?.message).toMatch(/gone0 does not exist/);
    });
  });

  describe("management server connectivity", () => {
    let pki: TestPki;
    let otherPki: TestPki;
    let server: Server;
    let url: string;

    beforeAll(async () => {
      pki = await createTestPki("diag");
      otherPki = await createTestPki("other");
      const leaf = await pki.issue("server", { days: 10 });
      server = createHttpsServer({ cert: pki.read(leaf.cert), key: pki.read(leaf.key) }, (_request, response) => {
        response.writeHead(426, { Date: new Date(Date.now() + 120_000).toUTCString() });
        response.end();
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      url = `wss://127.0.0.1:${(server.address() as AddressInfo).port}/agent`;
    });

    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
      rmSync(pki.dir, { recursive: true, force: true });
      rmSync(otherPki.dir, { recursive: true, force: true });
    });

    it("checks DNS, TCP, the chain against the pinned CA, expiry and clock skew", async () => {
      const checks = await mgmtChecks({ url, caFile: pki.caCert });
      const byKind = Object.fromEntries(checks.map((c) => [c.name.split(".")[1], c]));
      expect(byKind.dns?.status).toBe("ok");
      expect(byKind.tcp?.status).toBe("ok");
      expect(byKind.tls?.status).toBe("ok");
      expect(byKind["cert-expiry"]?.status).toBe("warn");
      expect(byKind["cert-expiry"]?.message).toMatch(/expires in (9|10) day/);
      expect(byKind.clock?.status).toBe("warn");
      expect(byKind.clock?.message).toMatch(/clock skew of 1[12]\d s/);
    });

    it("fails a server whose certificate does not chain to the pinned CA", async () => {
      const checks = await mgmtChecks({ url, caFile: otherPki.caCert });
      const tls = checks.find((c) => c.name.startsWith("mgmt.tls."));
      expect(tls?.status).toBe("fail");
      expect(tls?.fix).toMatch(/management\.caFile/);
    });

    it("fails an expired certificate", async () => {
      const inAMonth = new Date(Date.now() + 30 * 86_400_000);
      const checks = await mgmtChecks({ url, caFile: pki.caCert }, inAMonth);
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

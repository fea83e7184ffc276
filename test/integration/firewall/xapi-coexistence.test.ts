import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { eui64LinkLocal, parseMac } from "../../../src/addressing/index.js";
import { startDaemon } from "../../../src/exec.js";
import { createFirewall } from "../../../src/firewall/index.js";
import type { GuestPort } from "../../../src/firewall/model.js";
import { parseSave } from "../../../src/firewall/xtables/live.js";
import { type Netns, vethBetween, withNetns } from "../../support/netns.js";
import { skipReason } from "../../support/requirements.js";
import { until } from "../../support/wait.js";

const skip = skipReason({ root: true, commands: ["ebtables", "ip6tables", "ping", "/usr/bin/python3"] });

const mac = parseMac("52:54:00:7a:00:0a");
const PORT = "vif7.0";

/** What xenopsd's setup-vif-rules leaves for a locked VIF with IPv4 and IPv6 allowed (bridge backend). */
async function xapiLocksVif(dom0: Netns, device: string): Promise<void> {
  const eb = (...args: string[]) => dom0.exec("ebtables", args);
  await eb("-N", `FORWARD_${device}`, "-P", "DROP");
  await eb("-A", "FORWARD", "-i", device, "-j", `FORWARD_${device}`);
  await eb("-A", "FORWARD", "-o", device, "-j", `FORWARD_${device}`);
  await eb("-A", `FORWARD_${device}`, "-o", device, "-j", "ACCEPT");
  await eb("-A", `FORWARD_${device}`, "-s", "!", mac, "-j", "DROP");
  await eb("-A", `FORWARD_${device}`, "-p", "ARP", "--arp-ip-src", "192.0.2.10", "-j", "ACCEPT");
  await eb("-A", `FORWARD_${device}`, "-p", "IPv4", "--ip-src", "192.0.2.10", "-j", "ACCEPT");
  // ipv6_allowed non-empty: xapi accepts all IPv6 of the VIF.
  await eb("-A", `FORWARD_${device}`, "-p", "IPv6", "-j", "ACCEPT");
}

async function ebSave(dom0: Netns, table: "filter" | "nat" = "filter"): Promise<string> {
  return (await dom0.exec("ebtables-nft-save", ["-c", "-t", table])).stdout;
}

/** Everything in the filter table that is not ours: chain declarations (with policy) and rules, in order. */
function foreign(save: string): string[] {
  return save
    .split("\n")
    .map((line) => line.replace(/^\[\d+:\d+\] /, "").replace(/ -c \d+ \d+$/, ""))
    .filter((line) => /^(:|-A )/.test(line) && !/V6A|V6B|V6N|V6AGENT/.test(line));
}

/** Packet counter of the first rule of `chain` whose text is `rule`. */
function counter(save: string, chain: string, rule: string, tableName = "filter"): number {
  const table = parseSave(save, tableName).chains.get(chain);
  const index = table?.rules.indexOf(rule) ?? -1;
  return index < 0 ? -1 : (table?.counters[index]?.packets ?? -1);
}

/**
 * docs/xenserver.md "Coexisting with xapi's own rules": in dom0 our xtables batches never flush
 * or reorder xapi's FORWARD_vif* chains and jumps (ours live in ebtables `nat` and ip6tables
 * `raw` PREROUTING, before the bridge learns), our jump stays first there, what we allow RETURNs
 * so xapi's chain still judges (and counts) the traffic, and our batches wait for xapi's lock.
 */
describe.skipIf(skip !== undefined)("xtables next to xapi's FORWARD_vif* rules", () => {
  it("never flushes or reorders xapi's chains, keeps its jump first, and lets xapi's chain see the traffic", async () => {
    const workDir = mkdtempSync(join(tmpdir(), "v6xc-"));
    try {
      await withNetns(["xc0", "xcr", "xcg"], async (dom0, router, guest) => {
        await dom0.exec("ip", ["link", "add", "xenbr0", "type", "bridge"]);
        await dom0.exec("ip", ["link", "set", "xenbr0", "up"]);
        await vethBetween(dom0, "eth0", router, "eth0");
        await vethBetween(dom0, PORT, guest, "eth0", { macB: mac });
        for (const device of ["eth0", PORT]) await dom0.exec("ip", ["link", "set", device, "master", "xenbr0"]);
        await router.exec("ip", ["-6", "addr", "add", "2001:db8:7a::1/64", "dev", "eth0", "nodad"]);
        await guest.exec("ip", ["-6", "addr", "add", "2001:db8:7a::a/64", "dev", "eth0", "nodad"]);
        // dom0's own ip6tables rule (XenServer's firewall accepts bridged traffic), and xapi's VIF lock.
        await dom0.exec("ip6tables", ["-A", "FORWARD", "-m", "physdev", "--physdev-is-bridged", "-j", "ACCEPT"]);
        await xapiLocksVif(dom0, PORT);
        const xapiBefore = foreign(await ebSave(dom0));
        const ip6Before = foreign((await dom0.exec("ip6tables-nft-save", ["-t", "filter"])).stdout);

        const lockFile = join(workDir, "ebtables.lock");
        const firewall = await createFirewall({ backend: "xtables", netns: dom0.name, lockFile });
        const port: GuestPort = {
          device: PORT,
          bridge: "xenbr0",
          mac,
          linkLocals: [eui64LinkLocal(mac)],
          ipv6: ["2001:db8:7a::a"],
          ipv4: ["192.0.2.10"],
        } as GuestPort;
        const bridges = [{ name: "xenbr0", trustedPorts: ["eth0"], guestPortPatterns: ["vif*", "tap*"] }] as never;
        await firewall.reconcile({ bridges, ports: [port] });

        let save = await ebSave(dom0);
        // xapi's filter table is exactly as it was: our jump is not there at all.
        expect(parseSave(save).chains.get("FORWARD")?.rules).toEqual([`-i ${PORT} -j FORWARD_${PORT}`, `-o ${PORT} -j FORWARD_${PORT}`]);
        expect(foreign(save)).toEqual(xapiBefore);
        expect(save).toMatch(new RegExp(`^:FORWARD_${PORT.replace(".", "\\.")} DROP$`, "m"));
        expect(parseSave(await ebSave(dom0, "nat"), "nat").chains.get("PREROUTING")?.rules).toEqual(["-j V6AGENT"]);
        const ip6Save = (await dom0.exec("ip6tables-nft-save", ["-t", "filter"])).stdout;
        expect(parseSave(ip6Save).chains.get("FORWARD")?.rules).toEqual(["-m physdev --physdev-is-bridged -j ACCEPT"]);
        expect(foreign(ip6Save)).toEqual(ip6Before);
        const ip6Raw = (await dom0.exec("ip6tables-nft-save", ["-t", "raw"])).stdout;
        expect(parseSave(ip6Raw, "raw").chains.get("PREROUTING")?.rules).toEqual(["-j V6AGENT"]);

        // Allowed IPv6 passes our chain (RETURN) and then xapi's, whose ACCEPT counts it.
        const xapiAccepts = counter(save, `FORWARD_${PORT}`, "-p IPv6 -j ACCEPT");
        const oursReturns = counter(await ebSave(dom0, "nat"), `V6A-${PORT}`, "-p IPv6 -j RETURN", "nat");
        await guest.exec("ping", ["-6", "-c", "3", "-i", "0.2", "-W", "3", "2001:db8:7a::1"]);
        save = await ebSave(dom0);
        expect(counter(save, `FORWARD_${PORT}`, "-p IPv6 -j ACCEPT")).toBeGreaterThanOrEqual(xapiAccepts + 3);
        expect(counter(await ebSave(dom0, "nat"), `V6A-${PORT}`, "-p IPv6 -j RETURN", "nat")).toBeGreaterThanOrEqual(oursReturns + 3);

        // xapi re-plugs the VIF: deletes and re-creates its chain and jumps. Ours are untouched,
        // and a rule someone inserted above our jump is moved back below it by the next reconcile.
        await dom0.exec("ebtables", ["-D", "FORWARD", "-i", PORT, "-j", `FORWARD_${PORT}`]);
        await dom0.exec("ebtables", ["-D", "FORWARD", "-o", PORT, "-j", `FORWARD_${PORT}`]);
        await dom0.exec("ebtables", ["-F", `FORWARD_${PORT}`]);
        await dom0.exec("ebtables", ["-X", `FORWARD_${PORT}`]);
        await xapiLocksVif(dom0, PORT);
        await dom0.exec("ebtables", ["-t", "nat", "-I", "PREROUTING", "1", "-p", "IPv4", "-j", "CONTINUE"]);
        const xapiReplugged = foreign(await ebSave(dom0));
        await firewall.reconcile({ bridges, ports: [port] });
        save = await ebSave(dom0);
        const prerouting = parseSave(await ebSave(dom0, "nat"), "nat").chains.get("PREROUTING")?.rules ?? [];
        expect(prerouting[0]).toBe("-j V6AGENT");
        expect(prerouting.filter((rule) => rule === "-j V6AGENT")).toHaveLength(1);
        expect(foreign(save)).toEqual(xapiReplugged);
        await guest.exec("ping", ["-6", "-c", "1", "-W", "3", "2001:db8:7a::1"]);

        // Our batches wait for xapi's fcntl lock: held by a "setup-vif-rules", an upsert does not land.
        const held = `${lockFile}.held`;
        const holder = startDaemon("/usr/bin/python3", ["-c", HOLD_LOCK, lockFile, held]);
        await until(() => existsSync(held), "the lock holder to hold the lock");
        let landed = false;
        const upsert = firewall.upsertPort({ ...port, ipv6: ["2001:db8:7a::b"] } as GuestPort).then(() => {
          landed = true;
        });
        await new Promise((resolve) => setTimeout(resolve, 1500));
        expect(landed).toBe(false);
        expect(await ebSave(dom0)).not.toBe("");
        await holder.stop();
        await upsert;
        expect((await firewall.readLive()).ports[0]?.ipv6).toEqual(["2001:db8:7a::b"]);

        // Removing our port and everything else of ours leaves xapi's rules exactly as they were.
        await firewall.removePort(PORT);
        expect(foreign(await ebSave(dom0))).toEqual(xapiReplugged);
        await firewall.removeAll();
        save = await ebSave(dom0);
        expect(foreign(save)).toEqual(xapiReplugged);
        expect(save + (await ebSave(dom0, "nat"))).not.toMatch(/V6A|V6B|V6AGENT/);
      });
    } finally {
      rmSync(workDir, { recursive: true, force: true });
    }
  });
});

/** Holds the fcntl lock on argv[1] until killed, like xenopsd's setup-vif-rules while it runs. */
const HOLD_LOCK = [
  "import fcntl, os, sys, time",
  "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)",
  "fcntl.lockf(fd, fcntl.LOCK_EX)",
  // Says it holds the lock only once it does, so the test never races the interpreter's start.
  "open(sys.argv[2], 'w').close()",
  "time.sleep(120)",
].join("\n");

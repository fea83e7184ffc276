import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { skipReason } from "../../support/requirements.js";
import { until } from "../../support/wait.js";
import { NIC, proveGuestOs, runCommands, withGuestOs } from "./support/prove.js";
import { RHEL6_IFUP_DHCPV6 } from "./support/rhel6-ifup.js";
import { clientIdOf, RESERVED } from "./support/wire.js";

/**
 * The ISC dhclient variants, each started the way its OS starts it, in a guest against the lab's
 * router; see support/prove.ts for what each run must show. dhclient here is Debian 12's 4.4.3:
 * the 4.1 and RHEL 6 variants run their statements and command lines on it (4.1 itself is not
 * packaged for Debian 12).
 */
const reason = skipReason({
  root: true,
  commands: [
    "ip",
    "unshare",
    "nsenter",
    "tcpdump",
    "dnsmasq",
    "dhclient",
    "ifup",
    "ifdown",
    "ifquery",
    "strace",
    "/lib/systemd/systemd-sysctl",
  ],
});

/** Debian's stock /etc/network/interfaces (ifupdown's postinst writes it): only the include. */
const DEBIAN_INTERFACES = {
  path: "/etc/network/interfaces",
  content:
    "# interfaces(5) file used by ifup(8) and ifdown(8)\n# Include files from /etc/network/interfaces.d:\nsource /etc/network/interfaces.d/*\n",
};

describe.skipIf(reason)("dhclient variants on the wire, started as their OS starts them", () => {
  for (const role of ["default", "non-default"] as const) {
    it(`dhclient --${role}: the commands as pasted (sysctl.d applied when the NIC appears), dhclient with Debian's own files`, async () => {
      await proveGuestOs("dhclient", role, {
        async start(guest, config) {
          if (role === "non-default") {
            // udev's systemd-sysctl ran at boot, before the NIC came up: accept_ra is already 0.
            expect((await guest.exec(["sysctl", "-n", `net.ipv6.conf.${NIC}.accept_ra`])).stdout.trim()).toBe("0");
          }
          // dhclient -6 needs the NIC up with its link-local address, as on a running guest.
          await guest.nicUp();
          await runCommands(guest, config);
        },
      });
    });

    it(`dhclient-4.1 --${role}: dhclient.conf appended to Debian's, dhclient -6 -cf as pasted`, async () => {
      await proveGuestOs("dhclient-4.1", role, {
        async start(guest, config) {
          await guest.nicUp();
          await runCommands(guest, config);
        },
      });
    });

    it(`debian-ifupdown --${role}: ifdown and ifup as pasted, reading /etc/network/interfaces and /etc/dhcp/dhclient.conf`, async () => {
      await proveGuestOs("debian-ifupdown", role, {
        osFiles: [DEBIAN_INTERFACES],
        async start(guest, config) {
          await runCommands(guest, config);
          expect((await guest.exec(["ifquery", "--state", NIC])).stdout.trim()).toBe(`${NIC}=${NIC}`);
          expect((await guest.exec(["sysctl", "-n", `net.ipv6.conf.${NIC}.accept_ra`])).stdout.trim()).toBe(role === "default" ? "1" : "0");
        },
      });
    });

    it(`centos6 --${role}: ifcfg sourced and dhclient run as RHEL 6's ifup-eth does`, async () => {
      await proveGuestOs("centos6", role, {
        async start(guest) {
          await guest.exec(["bash", "-c", RHEL6_IFUP_DHCPV6, "ifup-eth", NIC]);
        },
      });
    });
  }

  it("debian-ifupdown: the dhclient -6 ifup starts opens /etc/dhcp/dhclient.conf, and no dhclient6.conf (strace)", async () => {
    const trace = "/run/ifup.strace";
    await withGuestOs(
      "debian-ifupdown",
      "default",
      {
        osFiles: [DEBIAN_INTERFACES],
        // strace -f follows dhclient into the background, so it never ends: not awaited; the
        // trace file grows as the calls happen.
        start: async (guest) => {
          void guest.exec(["strace", "-f", "-qq", "-e", "trace=open,openat", "-o", trace, "ifup", NIC]).catch(() => undefined);
        },
      },
      async ({ lab }) => {
        await lab.guest.waitForAddress(RESERVED);
        const opened = (await lab.guest.exec(["cat", trace])).stdout;
        expect(opened).toMatch(/openat\(AT_FDCWD, "\/etc\/dhcp\/dhclient\.conf", O_RDONLY\) = \d+/);
        expect(opened).not.toContain("dhclient6.conf");
      },
    );
  });

  it("debian-ifupdown as it was (the line in dhclient6.conf): Debian's dhclient sends a DUID-LLT and gets no address", async () => {
    // The check the bug slipped past: dhclient -6 as ifupdown runs it never reads dhclient6.conf,
    // so the client identifier on the wire is the DUID-LLT it made itself and the reservation,
    // keyed by DUID-LL, is never matched.
    await withGuestOs(
      "debian-ifupdown",
      "default",
      {
        osFiles: [DEBIAN_INTERFACES],
        files: (config) =>
          config.files.map((file) => (file.path === "/etc/dhcp/dhclient.conf" ? { ...file, path: "/etc/dhcp/dhclient6.conf" } : file)),
        // ifup waits for dhclient, which never gets an address, up to its 60 s timeout: the run
        // ends (and kills it) before.
        start: (guest, config) => runCommands(guest, config),
      },
      async ({ lab, solicit }) => {
        expect(clientIdOf(solicit)).toMatch(/^client-ID hwaddr\/time type 1 time \d+ [0-9a-f]{12}$/);
        // dnsmasq (static mode) answers an unknown DUID with status NoAddrsAvail, and leases nothing.
        await until(
          () => /DHCPADVERTISE\(r0\) 00:01:\S+ no addresses available/.test(readFileSync(lab.dnsmasq.logFile, "utf8")),
          "the router's answer to the DUID-LLT",
        );
        expect(lab.dnsmasq.leases()).toEqual([]);
      },
    );
  });
});

import { describe, expect, it } from "vitest";
import { skipReason } from "../../support/requirements.js";
import { until } from "../../support/wait.js";
import { NIC, proveGuestOs, runCommands } from "./support/prove.js";

/**
 * NetworkManager with the generated keyfile, on the wire against the lab's router: the guest
 * boots a D-Bus system bus and NetworkManager (as NetworkManager.service runs it, with Debian's
 * own NetworkManager.conf), then runs the pasted nmcli commands. NetworkManager's default DUID is
 * derived from the machine id, so a DUID-LL on the wire can only come from ipv6.dhcp-duid=ll.
 */
const reason = skipReason({
  root: true,
  commands: ["ip", "unshare", "nsenter", "tcpdump", "dnsmasq", "dbus-daemon", "NetworkManager", "nmcli"],
});

describe.skipIf(reason)("NetworkManager on the wire", () => {
  for (const role of ["default", "non-default"] as const) {
    it(`networkmanager --${role}: the keyfile loaded at boot, nmcli connection reload and up as pasted`, async () => {
      await proveGuestOs("networkmanager", role, {
        services: ["dbus", "NetworkManager"],
        async start(guest, config) {
          await until(
            () =>
              guest.exec(["nmcli", "-t", "-f", "RUNNING", "general"]).then(
                (r) => r.stdout.trim() === "running",
                () => false,
              ),
            "NetworkManager on the guest's system bus",
            30_000,
            100,
          );
          await runCommands(guest, config);
          const active = await guest.exec(["nmcli", "-t", "-f", "NAME,DEVICE", "connection", "show", "--active"]);
          expect(active.stdout).toContain(`v6agent-${NIC}:${NIC}`);
        },
      });
    });
  }
});

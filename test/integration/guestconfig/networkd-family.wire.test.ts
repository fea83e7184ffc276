import { describe, expect, it } from "vitest";
import { CommandError } from "../../../src/exec.js";
import { skipReason } from "../../support/requirements.js";
import { until } from "../../support/wait.js";
import type { GuestMachine } from "./support/guest-machine.js";
import { NIC, proveGuestOs, runCommands } from "./support/prove.js";

/**
 * systemd-networkd and netplan, on the wire against the lab's router. No systemd runs as PID 1
 * here, so the guest starts networkd (and the D-Bus system bus `networkctl` talks to it over) as
 * their units would; netplan's files go through netplan's own generator, as at boot. `netplan
 * apply` itself restarts networkd through systemctl: where that cannot work its test skips with
 * netplan's own error. networkd's default DUID is DUID-EN, so a DUID-LL on the wire can only come
 * from the generated DUIDType=link-layer.
 */
const reason = skipReason({
  root: true,
  commands: ["ip", "unshare", "nsenter", "tcpdump", "dnsmasq", "dbus-daemon", "/lib/systemd/systemd-networkd", "networkctl", "netplan"],
});

/** networkd is up once it answers on the bus. */
async function networkdOnTheBus(guest: GuestMachine): Promise<void> {
  await until(
    () =>
      guest.exec(["networkctl", "list", "--no-pager"]).then(
        (result) => !result.stderr.includes("not running"),
        () => false,
      ),
    "systemd-networkd on the guest's system bus",
    30_000,
    100,
  );
}

/** `networkctl status` names the .network file networkd matched to the NIC. */
async function networkFileOf(guest: GuestMachine): Promise<string | undefined> {
  const { stdout } = await guest.exec(["networkctl", "status", NIC, "--no-pager"]);
  return /Network File: (\S+)/.exec(stdout)?.[1];
}

describe.skipIf(reason)("systemd-networkd and netplan on the wire", () => {
  for (const role of ["default", "non-default"] as const) {
    it(`systemd-networkd --${role}: networkd at boot, then networkctl reload as pasted`, async () => {
      await proveGuestOs("systemd-networkd", role, {
        services: ["dbus", "systemd-networkd"],
        async start(guest, config) {
          await networkdOnTheBus(guest);
          await runCommands(guest, config);
          expect(await until(() => networkFileOf(guest), "networkd's file for the NIC")).toBe(
            `/etc/systemd/network/60-v6agent-${NIC}.network`,
          );
        },
      });
    });

    it(`netplan --${role}: netplan's generator at boot, networkd with its output and the DUID drop-in`, async () => {
      await proveGuestOs("netplan", role, {
        services: ["netplan-generator", "dbus", "systemd-networkd"],
        async start(guest) {
          await networkdOnTheBus(guest);
          expect(await until(() => networkFileOf(guest), "networkd's file for the NIC")).toBe(
            `/run/systemd/network/10-netplan-${NIC}.network`,
          );
          const generated = await guest.exec(["cat", `/run/systemd/network/10-netplan-${NIC}.network`]);
          expect(generated.stdout).toContain(role === "default" ? "IPv6AcceptRA=yes" : "IPv6AcceptRA=no");
        },
      });
    });
  }

  it("netplan apply (the pasted command): runs where systemd is PID 1, else skips with netplan's error", async (context) => {
    let applyError: string | undefined;
    await proveGuestOs("netplan", "default", {
      services: ["dbus"],
      async start(guest, config) {
        try {
          await runCommands(guest, config);
        } catch (error) {
          if (!(error instanceof CommandError)) throw error;
          applyError = error.stderr.trim().split("\n").slice(-2).join(" ");
          throw error;
        }
      },
    }).catch((error: unknown) => {
      if (applyError === undefined) throw error;
    });
    if (applyError !== undefined) {
      context.skip(`netplan apply restarts networkd through systemctl, and PID 1 here is not systemd: ${applyError}`);
    }
  });
});

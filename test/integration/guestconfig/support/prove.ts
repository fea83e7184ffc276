import { expect } from "vitest";
import { duidLl, parseInterfaceName, parseMac } from "../../../../src/addressing/index.js";
import { findGuestOs, type GuestConfig, type GuestFile, type NicRole } from "../../../../src/guestconfig/index.js";
import { until } from "../../../support/wait.js";
import type { GuestMachine, GuestService } from "./guest-machine.js";
import {
  captureSolicit,
  clientIdOf,
  duidLlOnWire,
  leaseDuid,
  RESERVED,
  solicitRouterAdvertisement,
  startWireLab,
  type WireLab,
} from "./wire.js";

export const MAC = parseMac("52:54:00:60:01:0a");
export const NIC = parseInterfaceName("eth0");

/** How one guest OS brings its NIC up: the daemons it boots, then the steps it (or its operator) runs. */
export interface GuestPlay {
  services?: readonly GuestService[];
  /** Files of the OS itself the test provides, so the run does not depend on this host's copies. */
  osFiles?: readonly GuestFile[];
  /** The generated files as installed; default: all of them, unchanged. */
  files?: (config: GuestConfig) => readonly GuestFile[];
  start(guest: GuestMachine, config: GuestConfig): Promise<void>;
}

export interface Proof {
  clientId: string | undefined;
  leasedTo: string | undefined;
  defaultRoutes: { gateway?: string; dev: string }[];
}

/**
 * Renders `os` for the lab guest's NIC, installs the files in the guest, boots it and runs the
 * OS's own steps; then checks what the router saw and what the guest holds: the Solicit's client
 * identifier is the DUID-LL of the NIC's MAC, the guest holds its reserved address (leased by the
 * router to that DUID), and only a default NIC takes a default route from the router's RAs —
 * a non-default NIC has none after two more RAs reached it.
 */
export async function proveGuestOs(os: string, role: NicRole, play: GuestPlay): Promise<Proof> {
  return withGuestOs(os, role, play, async ({ lab, solicit, started }) => {
    // The client identifier first: a wrong one fails at once, not when the address never comes.
    expect(clientIdOf(solicit)).toBe(duidLlOnWire(MAC));
    await started;
    await lab.guest.waitForAddress(RESERVED);
    const proof: Proof = { clientId: clientIdOf(solicit), leasedTo: leaseDuid(lab, RESERVED), defaultRoutes: [] };
    expect(proof.leasedTo).toBe(duidLl(MAC));
    if (role === "default") {
      proof.defaultRoutes = await until(async () => {
        const routes = await lab.guest.defaultRoutes();
        return routes.length > 0 ? routes : undefined;
      }, "a default route from the router's RAs");
      expect(proof.defaultRoutes).toEqual([expect.objectContaining({ gateway: lab.routerLinkLocal, dev: NIC })]);
    } else {
      // Two RAs after the address: by the second, whatever took the first (the kernel, or
      // networkd's and NetworkManager's own RA handling) has long acted on it.
      for (const round of [1, 2]) {
        const seen = await lab.guest.routerAdvertisementsReceived();
        await solicitRouterAdvertisement(lab);
        await until(async () => (await lab.guest.routerAdvertisementsReceived()) > seen, `RA ${round} at the guest`, 10_000, 50);
      }
      proof.defaultRoutes = await lab.guest.defaultRoutes();
      expect(proof.defaultRoutes).toEqual([]);
    }
    return proof;
  });
}

/**
 * The run itself: a router and a booted guest with `os`'s files, the OS's steps done, and the
 * first Solicit the router saw (tcpdump -vv text) handed to `check` as soon as it is seen, with
 * the OS's steps (`started`) perhaps still running; everything torn down after.
 */
export async function withGuestOs<T>(
  os: string,
  role: NicRole,
  play: GuestPlay,
  check: (run: { lab: WireLab; config: GuestConfig; solicit: string; started: Promise<void> }) => Promise<T>,
): Promise<T> {
  const config = findGuestOs(os).render({ nic: NIC, mac: MAC, role });
  const lab = await startWireLab(NIC, MAC);
  try {
    const capture = await captureSolicit(lab);
    try {
      await lab.guest.install([...(play.osFiles ?? []), ...(play.files?.(config) ?? config.files)]);
      await lab.guest.boot(play.services ?? []);
      const started = play.start(lab.guest, config);
      started.catch(() => undefined);
      // A step that fails before any Solicit fails the run at once.
      const solicit = await Promise.race([capture.packets, started.then(() => capture.packets)]);
      return await check({ lab, config, solicit, started });
    } finally {
      capture.stop();
    }
  } finally {
    await lab.stop();
  }
}

/** Runs the renderer's commands in the guest, in order, as the operator would paste them. */
export async function runCommands(guest: GuestMachine, config: GuestConfig): Promise<void> {
  for (const argv of config.commands) await guest.exec(argv);
}

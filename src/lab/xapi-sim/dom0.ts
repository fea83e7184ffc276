import { run } from "../../exec.js";

/** What dom0 does when a VIF comes up: a backend device on the network's bridge. */
export interface Dom0Vif {
  vmUuid: string;
  domid: number;
  /** `VIF.device`, the guest's NIC index. */
  device: string;
  /** dom0's name for it: `vif<domid>.<device>`. */
  ifname: string;
  bridge: string;
  /** `VIF.MAC`, the guest side's MAC. */
  mac: string;
  mtu: number;
}

/**
 * The simulator's optional dom0 hook: XAPI awaits it while a VM starts or a VIF is plugged (so
 * the port exists when the call returns, as on a real host) and when it goes away.
 */
/** A VLAN PIF coming up: `<device>.<tag>` on the VLAN network's bridge. */
export interface Dom0Vlan {
  /** The tagged (physical) PIF's device, e.g. `eth0`. */
  device: string;
  tag: number;
  bridge: string;
}

export interface Dom0Network {
  vifPlugged(vif: Dom0Vif): Promise<void>;
  vifUnplugged(vif: Dom0Vif): Promise<void>;
  vlanPlugged?(vlan: Dom0Vlan): Promise<void>;
  vlanUnplugged?(vlan: Dom0Vlan): Promise<void>;
}

export interface NetnsDom0Options {
  /** The namespace playing dom0: bridges and `vif*` ports live here. */
  dom0: string;
  /**
   * The namespace holding a VM's guest side (named `eth<device>` there, carrying `VIF.MAC`), or
   * undefined to leave the peer down inside dom0 as `vg<domid>.<device>`.
   */
  guestNetns?: (vmUuid: string) => string | undefined;
  /**
   * VMs that play an HVM guest before its PV drivers load: dom0 also gets QEMU's emulated NIC
   * `tap<domid>.<device>` on the bridge, and that is the port the guest's traffic uses (the
   * `vif`'s peer stays down in dom0).
   */
  emulated?: (vmUuid: string) => boolean;
}

/**
 * Dom0 made of real kernel objects inside a network namespace: a VIF is a veth pair whose dom0
 * end is `vif<domid>.<device>` (MAC fe:ff:ff:ff:ff:ff like netback's) enslaved to the
 * network's bridge, and whose other end is the guest's NIC.
 */
export class NetnsDom0 implements Dom0Network {
  constructor(private readonly options: NetnsDom0Options) {}

  async vifPlugged(vif: Dom0Vif): Promise<void> {
    await this.ensureBridge(vif.bridge);
    const guestNs = this.options.guestNetns?.(vif.vmUuid);
    if (this.options.emulated?.(vif.vmUuid) === true) {
      await this.addPort(vif, vif.ifname, `vg${vif.domid}.${vif.device}`, undefined);
      await this.addPort(vif, emulatedName(vif), guestNs === undefined ? `tg${vif.domid}.${vif.device}` : `eth${vif.device}`, guestNs);
    } else {
      await this.addPort(vif, vif.ifname, guestNs === undefined ? `vg${vif.domid}.${vif.device}` : `eth${vif.device}`, guestNs);
    }
  }

  async vifUnplugged(vif: Dom0Vif): Promise<void> {
    // Deleting one end of a veth pair deletes the other, wherever it lives.
    for (const name of [vif.ifname, emulatedName(vif)]) {
      await run("ip", ["link", "del", name], { netns: this.options.dom0, okExitCodes: [0, 1] });
    }
  }

  /** A dom0 port `name` on the VIF's bridge, whose peer carries the guest's MAC (up only in a guest namespace). */
  private async addPort(vif: Dom0Vif, name: string, peer: string, guestNs: string | undefined): Promise<void> {
    const dom0 = this.options.dom0;
    const peerArgs = guestNs === undefined ? ["name", peer] : ["name", peer, "netns", guestNs];
    await run("ip", ["link", "add", name, "type", "veth", "peer", ...peerArgs], { netns: dom0 });
    await run("ip", ["link", "set", name, "address", "fe:ff:ff:ff:ff:ff", "mtu", String(vif.mtu)], { netns: dom0 });
    await run("ip", ["link", "set", name, "master", vif.bridge, "up"], { netns: dom0 });
    const peerNs = guestNs ?? dom0;
    await run("ip", ["link", "set", peer, "address", vif.mac, "mtu", String(vif.mtu)], { netns: peerNs });
    if (guestNs !== undefined) await run("ip", ["link", "set", peer, "up"], { netns: peerNs });
  }

  /**
   * A VLAN network's bridge with `<device>.<tag>` on it, as the bridge backend builds it. Done only
   * when the tagged device exists in dom0 (a test gives dom0 an `eth0` towards its router).
   */
  async vlanPlugged(vlan: Dom0Vlan): Promise<void> {
    const dom0 = this.options.dom0;
    const madeBridge = await this.ensureBridge(vlan.bridge);
    const { exitCode } = await run("ip", ["link", "show", vlan.device], { netns: dom0, okExitCodes: [0, 1] });
    if (exitCode !== 0) return;
    const name = `${vlan.device}.${vlan.tag}`;
    const added = await run("ip", ["link", "add", "link", vlan.device, "name", name, "type", "vlan", "id", String(vlan.tag)], {
      netns: dom0,
      okExitCodes: [0, 2],
    });
    if (added.exitCode !== 0) {
      // A kernel without 8021q ("Unknown device type"): the plug fails, as xcp-networkd's would,
      // and leaves no bridge behind.
      if (madeBridge) await run("ip", ["link", "del", vlan.bridge], { netns: dom0, okExitCodes: [0, 1] });
      throw new Error(`cannot create ${name}: this kernel has no 802.1Q VLAN support (8021q): ${added.stderr.trim()}`);
    }
    await run("ip", ["link", "set", name, "master", vlan.bridge, "up"], { netns: dom0 });
  }

  async vlanUnplugged(vlan: Dom0Vlan): Promise<void> {
    await run("ip", ["link", "del", `${vlan.device}.${vlan.tag}`], { netns: this.options.dom0, okExitCodes: [0, 1] });
  }

  /** Bridges being made: VIFs plugged concurrently onto a new bridge make it once. */
  private readonly making = new Map<string, Promise<boolean>>();

  /** Returns true when it made the bridge. */
  private async ensureBridge(bridge: string): Promise<boolean> {
    const pending = this.making.get(bridge);
    if (pending !== undefined) return pending.then(() => false);
    const making = this.makeBridge(bridge).finally(() => this.making.delete(bridge));
    this.making.set(bridge, making);
    return making;
  }

  private async makeBridge(bridge: string): Promise<boolean> {
    const dom0 = this.options.dom0;
    const { exitCode } = await run("ip", ["link", "show", bridge], { netns: dom0, okExitCodes: [0, 1] });
    if (exitCode === 0) return false;
    await run("ip", ["link", "add", bridge, "type", "bridge"], { netns: dom0 });
    await run("ip", ["link", "set", bridge, "up"], { netns: dom0 });
    return true;
  }
}

/** QEMU's emulated NIC next to a VIF in dom0. */
function emulatedName(vif: Dom0Vif): string {
  return `tap${vif.domid}.${vif.device}`;
}

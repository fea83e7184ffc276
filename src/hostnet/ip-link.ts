import { run } from "../exec.js";

/**
 * Links as iproute2 reports them with `ip -json -details link show` (no text scraping). Every
 * function takes an optional network namespace so a whole "host" can live in one.
 */
export interface HostnetOptions {
  /** Run inside this network namespace instead of the agent's own. */
  netns?: string;
}

export interface IpLink {
  ifname: string;
  mtu: number;
  flags: string[];
  operstate?: string;
  /** The bridge this link is a port of. */
  master?: string;
  /** A VLAN's parent link. */
  link?: string;
  linkinfo?: {
    info_kind?: string;
    info_data?: { protocol?: string; id?: number };
  };
}

export async function ip(args: readonly string[], options: HostnetOptions = {}): Promise<void> {
  await run("ip", args, { netns: options.netns });
}

async function ipJson<T>(args: readonly string[], options: HostnetOptions): Promise<T> {
  const { stdout } = await run("ip", ["-json", "-details", ...args], { netns: options.netns });
  return JSON.parse(stdout.trim() === "" ? "[]" : stdout) as T;
}

export function listLinks(options: HostnetOptions = {}): Promise<IpLink[]> {
  return ipJson<IpLink[]>(["link", "show"], options);
}

export async function findLink(name: string, options: HostnetOptions = {}): Promise<IpLink | undefined> {
  return (await listLinks(options)).find((link) => link.ifname === name);
}

/** The ports of a bridge. */
export async function bridgePorts(bridge: string, options: HostnetOptions = {}): Promise<IpLink[]> {
  return (await listLinks(options)).filter((link) => link.master === bridge);
}

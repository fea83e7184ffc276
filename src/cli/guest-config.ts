import { parseInterfaceName, parseMac } from "../addressing/index.js";
import { InvalidArgumentError } from "../errors.js";
import { findGuestOs, formatGuestConfig, GUEST_OSES, type GuestConfig, type GuestConfigRequest } from "../guestconfig/index.js";

export interface GuestConfigOptions {
  os?: string;
  mac?: string;
  nic?: string;
  default?: boolean;
  nonDefault?: boolean;
  json?: boolean;
}

/** Validates the command line once and renders the chosen OS's configuration. */
export function guestConfigCommand(options: GuestConfigOptions): { request: GuestConfigRequest; config: GuestConfig; text: string } {
  const os = findGuestOs(options.os, "--os");
  if (options.default && options.nonDefault) {
    throw new InvalidArgumentError("--non-default", "--default and --non-default are mutually exclusive");
  }
  const request: GuestConfigRequest = {
    nic: parseInterfaceName(options.nic ?? "eth0", "--nic"),
    role: options.nonDefault ? "non-default" : "default",
  };
  if (options.mac !== undefined) request.mac = parseMac(options.mac, "--mac");
  const config = os.render(request);
  return { request, config, text: formatGuestConfig(config, request) };
}

export function guestOsHelp(): string {
  const width = Math.max(...GUEST_OSES.map((os) => os.id.length));
  const rows = GUEST_OSES.map((os) => {
    const aliases = os.aliases.length > 0 ? ` (also ${os.aliases.join(", ")})` : "";
    return `  ${os.id.padEnd(width)}  ${os.summary}${aliases}`;
  });
  return `\nGuest OS ids for --os:\n${rows.join("\n")}\n\n--non-default adds accept_ra 0 in the OS's own way so only the default NIC takes the default route.\n`;
}

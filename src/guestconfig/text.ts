import { duidLl, eui64LinkLocal } from "../addressing/index.js";
import type { GuestConfig, GuestConfigRequest } from "./guest-config.js";

/**
 * The paste-ready text: a comment header (with --mac, the DUID-LL and link-local the DHCPv6
 * server and the port policy expect), then each file under a `### file` marker, then the commands.
 */
export function formatGuestConfig(config: GuestConfig, request: GuestConfigRequest): string {
  const lines = [`# v6agent guest-config --os ${config.os} --nic ${request.nic} --${request.role}`, `# ${config.title}`];
  if (request.mac !== undefined) {
    lines.push(`# MAC ${request.mac}  DUID-LL ${duidLl(request.mac)}  expected link-local ${eui64LinkLocal(request.mac)}`);
  }
  for (const note of config.notes) lines.push(`# ${note}`);
  for (const file of config.files) {
    const how = [file.append ? "append" : undefined, file.mode === undefined ? undefined : `mode ${file.mode}`].filter(Boolean);
    lines.push("", `### file ${file.path}${how.length > 0 ? ` (${how.join(", ")})` : ""}`, file.content.trimEnd());
  }
  if (config.commands.length > 0) {
    lines.push("", "### run");
    for (const argv of config.commands) lines.push(argv.join(" "));
  }
  return `${lines.join("\n")}\n`;
}

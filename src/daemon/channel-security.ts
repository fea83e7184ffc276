import { readFileSync } from "node:fs";
import type { ConnectionSecurity } from "../channel/connection-options.js";
import type { ManagementConfig } from "./config.js";

/**
 * What the daemon's channel is given to authenticate the server and itself: the pinned CA and
 * client certificate (read from their files), the bearer token, and whether plain ws:// may
 * leave the host. One function for the daemon and for the load-time check of the same rules.
 */
export function channelSecurity(
  management: Pick<ManagementConfig, "caFile" | "certFile" | "keyFile" | "token" | "tokenFile" | "insecure">,
  read: (path: string) => Buffer = (path) => readFileSync(path),
): Required<Pick<ConnectionSecurity, "allowInsecure">> & ConnectionSecurity {
  const security: ConnectionSecurity & { allowInsecure: boolean } = { allowInsecure: management.insecure };
  const token = management.token ?? (management.tokenFile === undefined ? undefined : read(management.tokenFile).toString("utf8").trim());
  if (token !== undefined) security.token = token;
  if (management.caFile !== undefined) {
    security.tls = {
      ca: read(management.caFile),
      cert: management.certFile === undefined ? undefined : read(management.certFile),
      key: management.keyFile === undefined ? undefined : read(management.keyFile),
    };
  }
  return security;
}

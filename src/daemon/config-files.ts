import { X509Certificate } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { createSecureContext } from "node:tls";
import { checkServerUrl } from "../channel/connection-options.js";
import { channelSecurity } from "./channel-security.js";
import type { ConfigDraft } from "./config.js";
import { HEADER_SAFE, TOKEN_CHARACTERS } from "./config-fields.js";
import type { ConfigProblems } from "./config-problems.js";

/** Files a configuration names are small: a bigger one is a mistake (a disk image, a log), not a key. */
const MAX_FILE_BYTES = 1024 * 1024;

/**
 * What the daemon would otherwise find wrong only once it runs, checked at load: every named
 * file is a readable, non-empty regular file; the CA file holds certificates; the client
 * certificate and key parse and belong together; a token fits an HTTP header (ws throws on one
 * that does not, in the middle of a reconnect); and every server passes the channel's own URL
 * rule with the security the daemon will give it.
 */
export async function checkConfigFiles(config: ConfigDraft, problems: ConfigProblems): Promise<void> {
  const management = config.management ?? {};
  const named: [string, string | undefined][] = [
    ["management.caFile", management.caFile],
    ["management.certFile", management.certFile],
    ["management.keyFile", management.keyFile],
    ["management.tokenFile", management.tokenFile],
    ["hypervisor.xapi.passwordFile", config.hypervisor?.kind === "xenserver" ? config.hypervisor.xapi.passwordFile : undefined],
  ];
  const contents = new Map<string, Buffer>();
  for (const [field, path] of named) {
    if (path === undefined) continue;
    const content = await readNamedFile(field, path, problems);
    if (content !== undefined) contents.set(path, content);
  }
  const text = (path: string | undefined) => (path === undefined ? undefined : contents.get(path)?.toString("utf8"));
  const token = text(management.tokenFile)?.trim();
  if (token !== undefined && !HEADER_SAFE.test(token))
    problems.add("management.tokenFile", `${management.tokenFile}: the token ${TOKEN_CHARACTERS}`);
  const ca = text(management.caFile);
  if (ca !== undefined) {
    const problem = certificateProblem(ca);
    if (problem !== undefined) problems.add("management.caFile", `${management.caFile} ${problem}`);
  }
  const cert = text(management.certFile);
  const key = text(management.keyFile);
  if (cert !== undefined && key !== undefined) keyPairProblems(cert, key, management, problems);
  // The channel's own rule, with what the daemon will hand it, once nothing else is wrong there.
  if (problems.list.some((problem) => problem.field.startsWith("management"))) return;
  const { servers, insecure } = management;
  if (servers === undefined || insecure === undefined) return;
  const security = channelSecurity({ ...management, insecure }, (path) => contents.get(path) ?? Buffer.alloc(0));
  servers.forEach((url, index) => {
    problems.field(() => checkServerUrl(url, security, `management.servers[${index}]`));
  });
}

async function readNamedFile(field: string, path: string, problems: ConfigProblems): Promise<Buffer | undefined> {
  let content: Buffer;
  try {
    const info = await stat(path);
    if (!info.isFile()) return refuse(problems, field, `${path} is not a regular file`);
    if (info.size > MAX_FILE_BYTES) return refuse(problems, field, `${path} is larger than 1 MiB: not a key, token or certificate`);
    content = await readFile(path);
  } catch (error) {
    return refuse(problems, field, `${path} is not readable (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  if (content.toString("utf8").trim() === "") return refuse(problems, field, `${path} is empty`);
  return content;
}

function refuse(problems: ConfigProblems, field: string, message: string): undefined {
  problems.add(field, message);
  return undefined;
}

/** Why a CA file cannot verify anything: no certificate in it, or one that does not parse. */
function certificateProblem(pem: string): string | undefined {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return "holds no PEM certificate (-----BEGIN CERTIFICATE-----)";
  for (const [index, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (error) {
      return `certificate ${index + 1} does not parse (${(error as Error).message})`;
    }
  }
  return undefined;
}

/** The client certificate and key as TLS will load them: each parses, and the key is the certificate's. */
function keyPairProblems(cert: string, key: string, management: { certFile?: string; keyFile?: string }, problems: ConfigProblems): void {
  const certProblem = certificateProblem(cert);
  if (certProblem !== undefined) {
    problems.add("management.certFile", `${management.certFile} ${certProblem}`);
    return;
  }
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    const message = (error as Error).message;
    problems.add(
      "management.keyFile",
      /mismatch/i.test(message)
        ? `${management.keyFile} is not the private key of ${management.certFile}`
        : `${management.keyFile} is not a usable private key (${message})`,
    );
  }
}

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Test PKI made with openssl at test time in a temp dir: a CA, a server certificate for
 * 127.0.0.1/localhost, client certificates for hosts (CN host-1; SAN DNS:host-2 under CN
 * other-name), an expired server and an expired client certificate, certificates with the wrong
 * extendedKeyUsage (a "client" for serverAuth, a "server" for clientAuth), and a second
 * ("rogue") CA with its own server and client certificates.
 */
export interface TlsMaterial {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  /** CN host-1 (the channel harness's default hostId), no SAN. */
  clientCert: string;
  clientKey: string;
  /** SAN DNS:host-2, CN other-name: the SAN decides. */
  host2Cert: string;
  host2Key: string;
  expiredClientCert: string;
  expiredClientKey: string;
  /** A client certificate whose extendedKeyUsage is serverAuth only. */
  wrongUsageClientCert: string;
  wrongUsageClientKey: string;
  /** A server certificate whose extendedKeyUsage is clientAuth only. */
  wrongUsageServerCert: string;
  wrongUsageServerKey: string;
  expiredServerCert: string;
  expiredServerKey: string;
  rogueCa: string;
  rogueServerCert: string;
  rogueServerKey: string;
  rogueClientCert: string;
  rogueClientKey: string;
  cleanup(): void;
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
}

function makeCa(dir: string, name: string): void {
  openssl(
    dir,
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.pem`,
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
  );
}

function makeLeaf(dir: string, ca: string, name: string, extension: string, validity: string[], cn = name): void {
  openssl(
    dir,
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    `/CN=${cn}`,
  );
  // `openssl x509 -req` cannot backdate; `openssl ca` can, so expired certificates use it.
  if (validity.length > 0) {
    execFileSync("sh", ["-c", "mkdir -p db && : > db/index && echo 01 > db/serial"], { cwd: dir });
    const config = join(dir, `${name}.cnf`);
    execFileSync("sh", ["-c", `cat > "$1"`, "sh", config], {
      cwd: dir,
      input: `[ca]\ndefault_ca=d\n[d]\ndatabase=db/index\nserial=db/serial\nnew_certs_dir=db\ndefault_md=sha256\npolicy=p\ncopy_extensions=none\n[p]\ncommonName=supplied\n[ext]\n${extension.replaceAll(";", "\n")}\n`,
    });
    openssl(
      dir,
      "ca",
      "-batch",
      "-config",
      config,
      "-cert",
      `${ca}.pem`,
      "-keyfile",
      `${ca}.key`,
      "-in",
      `${name}.csr`,
      "-out",
      `${name}.pem`,
      "-extensions",
      "ext",
      "-notext",
      ...validity,
    );
    return;
  }
  execFileSync("sh", ["-c", `printf '%s\\n' "$1" > ext-${name}.cnf`, "sh", extension.replaceAll(";", "\n")], { cwd: dir });
  openssl(
    dir,
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.pem`,
    "-CAkey",
    `${ca}.key`,
    "-CAcreateserial",
    "-out",
    `${name}.pem`,
    "-days",
    "1",
    "-extfile",
    `ext-${name}.cnf`,
  );
}

export function makeTlsMaterial(): TlsMaterial {
  const dir = mkdtempSync(join(tmpdir(), "v6agent-tls-"));
  // Extensions are separated by ";" (a SAN list itself holds commas).
  const serverExt = "subjectAltName=IP:127.0.0.1,DNS:localhost;extendedKeyUsage=serverAuth";
  const clientExt = "extendedKeyUsage=clientAuth";
  makeCa(dir, "ca");
  makeCa(dir, "rogue-ca");
  makeLeaf(dir, "ca", "server", serverExt, []);
  const expired = ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"];
  makeLeaf(dir, "ca", "client", clientExt, [], "host-1");
  makeLeaf(dir, "ca", "host2", `subjectAltName=DNS:host-2;${clientExt}`, [], "other-name");
  makeLeaf(dir, "ca", "expired-client", clientExt, expired, "host-1");
  makeLeaf(dir, "ca", "wrong-usage-client", "extendedKeyUsage=serverAuth", [], "host-1");
  makeLeaf(dir, "ca", "wrong-usage-server", "subjectAltName=IP:127.0.0.1,DNS:localhost;extendedKeyUsage=clientAuth", []);
  makeLeaf(dir, "ca", "expired", serverExt, expired);
  makeLeaf(dir, "rogue-ca", "rogue-server", serverExt, []);
  makeLeaf(dir, "rogue-ca", "rogue-client", clientExt, []);
  const read = (file: string) => readFileSync(join(dir, file), "utf8");
  return {
    dir,
    ca: read("ca.pem"),
    serverCert: read("server.pem"),
    serverKey: read("server.key"),
    clientCert: read("client.pem"),
    clientKey: read("client.key"),
    host2Cert: read("host2.pem"),
    host2Key: read("host2.key"),
    expiredClientCert: read("expired-client.pem"),
    expiredClientKey: read("expired-client.key"),
    wrongUsageClientCert: read("wrong-usage-client.pem"),
    wrongUsageClientKey: read("wrong-usage-client.key"),
    wrongUsageServerCert: read("wrong-usage-server.pem"),
    wrongUsageServerKey: read("wrong-usage-server.key"),
    expiredServerCert: read("expired.pem"),
    expiredServerKey: read("expired.key"),
    rogueCa: read("rogue-ca.pem"),
    rogueServerCert: read("rogue-server.pem"),
    rogueServerKey: read("rogue-server.key"),
    rogueClientCert: read("rogue-client.pem"),
    rogueClientKey: read("rogue-client.key"),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

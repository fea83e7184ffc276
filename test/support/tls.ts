import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../../src/exec.js";

/** A throwaway PKI made with the real openssl at test time: a CA and leaf certificates signed by it. */
export interface TestPki {
  dir: string;
  caCert: string;
  caKey: string;
  /** Issues a certificate for `name` (server: DNS/IP SANs; client: CN only); returns file paths. */
  issue(name: string, options?: { days?: number; sans?: string[] }): Promise<{ cert: string; key: string }>;
  read(path: string): Buffer;
}

export async function createTestPki(label = "ca"): Promise<TestPki> {
  const dir = mkdtempSync(join(tmpdir(), `v6agent-pki-${label}-`));
  const caKey = join(dir, "ca.key");
  const caCert = join(dir, "ca.crt");
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    caKey,
    "-out",
    caCert,
    "-days",
    "30",
    "-subj",
    `/CN=v6agent test ${label}`,
  ]);
  let serial = 1;
  return {
    dir,
    caCert,
    caKey,
    read: (path) => readFileSync(path),
    async issue(name, options = {}) {
      const key = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const cert = join(dir, `${name}.crt`);
      const ext = join(dir, `${name}.ext`);
      const sans = options.sans ?? ["DNS:localhost", "IP:127.0.0.1", "IP:::1"];
      await run("openssl", [
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
        "-out",
        csr,
        "-subj",
        `/CN=${name}`,
      ]);
      writeFileSync(ext, `subjectAltName=${sans.join(",")}\nbasicConstraints=CA:FALSE\n`);
      await run("openssl", [
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        caCert,
        "-CAkey",
        caKey,
        "-set_serial",
        String(serial++),
        "-out",
        cert,
        "-days",
        String(options.days ?? 10),
        "-extfile",
        ext,
      ]);
      return { cert, key };
    },
  };
}

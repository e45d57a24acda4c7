// A throwaway PKI for TLS tests, made with the openssl command (the same commands the README shows).
//
// API:
//   makePki(dir)                     a CA, a server certificate for localhost/127.0.0.1, a client certificate
//   pki.issue(name, { client? })     another certificate (and key) signed by the CA
//   makeCa(dir, name)                a separate CA (for "signed by someone else" cases)
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

/** A certificate and its key, as PEM file paths. */
export interface CertFiles {
  cert: string;
  key: string;
}

/** A CA that can issue certificates. */
export interface TestCa extends CertFiles {
  /** Issues a certificate for localhost and 127.0.0.1 (server) or for a client, signed by this CA. */
  issue(name: string, options?: { client?: boolean }): CertFiles;
}

/** A CA with a server and a client certificate. */
export interface TestPki {
  ca: TestCa;
  server: CertFiles;
  client: CertFiles;
}

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/** A self-signed CA named `name` in `dir`. */
export function makeCa(dir: string, name: string): TestCa {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  openssl(["req", "-x509", ...EC_KEY, "-keyout", key, "-out", cert, "-days", "2", "-subj", `/CN=${name}`]);
  let serial = 0;
  return {
    cert,
    key,
    issue(certName, options = {}) {
      const out = { cert: join(dir, `${certName}.pem`), key: join(dir, `${certName}.key`) };
      const csr = join(dir, `${certName}.csr`);
      const ext = join(dir, `${certName}.ext`);
      writeFileSync(
        ext,
        options.client
          ? "extendedKeyUsage=clientAuth\n"
          : "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
      );
      openssl(["req", ...EC_KEY, "-keyout", out.key, "-out", csr, "-subj", `/CN=${certName}`]);
      serial++;
      openssl([
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        cert,
        "-CAkey",
        key,
        "-set_serial",
        String(1000 + serial),
        "-out",
        out.cert,
        "-days",
        "2",
        "-extfile",
        ext,
      ]);
      return out;
    },
  };
}

/** A CA in `dir` with a server certificate ("server") and a client certificate ("client"). */
export function makePki(dir: string): TestPki {
  const ca = makeCa(dir, "test-ca");
  return { ca, server: ca.issue("server"), client: ca.issue("client", { client: true }) };
}

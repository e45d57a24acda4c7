// Why a connection failed, for the advice a person reads: one TLS handshake of our own to the address, classified.
import { X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import { connect, type PeerCertificate, type TLSSocket } from "node:tls";
import type { TlsOptions } from "../client/index.js";
import { hostOf } from "../client/tls-credentials.js";

/** How the command connected: plaintext, or TLS with these settings (and the flags they came from). */
export interface ConnectionAttempt {
  address: string;
  tls: boolean | TlsOptions;
  /** The --ca file, to name it. */
  caFile?: string | undefined;
  /** The --cert file, to name it. */
  certFile?: string | undefined;
}

/** How long the probe waits for the handshake, and after it for a TLS 1.3 server to refuse a client certificate. */
const HANDSHAKE_MS = 3000;
const AFTER_HANDSHAKE_MS = 1000;

/** What one TLS handshake with the server showed. */
type Probe =
  | { kind: "secure"; socket: TLSSocket; authorized: boolean; authorizationError?: string; peer?: PeerCertificate }
  | { kind: "error"; code: string; message: string }
  | { kind: "timeout" };

function probe(address: string, tls: TlsOptions): Promise<Probe> {
  const host = hostOf(address);
  const port = Number(address.slice(address.lastIndexOf(":") + 1));
  return new Promise((resolve) => {
    const socket = connect({
      host,
      port,
      ...(isIP(host) === 0 ? { servername: host } : {}),
      ALPNProtocols: ["h2"],
      // Checked below, so the certificate can be named in the advice.
      rejectUnauthorized: false,
      ...(tls.rootCerts === undefined ? {} : { ca: tls.rootCerts }),
      ...(tls.certChain === undefined ? {} : { cert: tls.certChain }),
      ...(tls.privateKey === undefined ? {} : { key: tls.privateKey }),
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ kind: "timeout" });
    }, HANDSHAKE_MS);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      const peer = socket.getPeerCertificate();
      resolve({
        kind: "secure",
        socket,
        authorized: socket.authorized,
        ...(socket.authorizationError === null ? {} : { authorizationError: String(socket.authorizationError) }),
        ...(peer && Object.keys(peer).length > 0 ? { peer } : {}),
      });
    });
    socket.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ kind: "error", code: error.code ?? "", message: error.message });
    });
  });
}

/** After a TLS 1.3 handshake, the server's refusal of the client certificate (its alert), if one comes. */
function refusalAfterHandshake(socket: TLSSocket): Promise<{ code: string } | undefined> {
  return new Promise((resolve) => {
    const done = (result: { code: string } | undefined): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done(undefined), AFTER_HANDSHAKE_MS);
    // The server speaks first on a good HTTP/2 connection (its SETTINGS frame): data means accepted.
    socket.once("data", () => done(undefined));
    socket.once("error", (error: NodeJS.ErrnoException) => done({ code: error.code ?? error.message }));
    // A server that refuses the certificate may just close, with no alert before its first frame.
    socket.once("close", () => done({ code: "CLOSED_AFTER_HANDSHAKE" }));
  });
}

/** "CN=server, O=Example" from a certificate's subject or issuer. */
function dn(name: PeerCertificate["subject"] | undefined): string {
  if (name === undefined) return "?";
  return Object.entries(name)
    .map(([key, value]) => `${key}=${Array.isArray(value) ? value.join("+") : value}`)
    .join(", ");
}

const NOT_SIGNED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
]);

/** A plaintext HTTP/2 server answering a TLS ClientHello: what OpenSSL reports. */
const NOT_TLS = /WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|UNKNOWN_PROTOCOL|ECONNRESET|HTTP_REQUEST/i;

const MTLS_FLAGS = "--cert FILE --key FILE (JOBWATCH_CERT, JOBWATCH_KEY)";

/**
 * Why connecting to `attempt.address` failed when the cause is TLS: the server speaks TLS and the client
 * did not, or the other way round, the server's certificate is not signed by the CA trusted (its subject
 * and issuer named) or does not name the host, or the server wants a client certificate or refused
 * the one given. Undefined when a handshake shows none of these (the server is down, a firewall ...).
 */
export async function diagnoseConnection(attempt: ConnectionAttempt): Promise<string | undefined> {
  const { address } = attempt;
  const tls = attempt.tls === false ? undefined : attempt.tls === true ? {} : attempt.tls;
  const result = await probe(address, tls ?? {});
  if (tls === undefined) {
    if (result.kind !== "secure") return undefined;
    result.socket.destroy();
    return (
      `it speaks TLS and this command connected without it: add --ca FILE ` +
      "(JOBWATCH_CA, the CA that signed the server's certificate), or --tls to trust the system's roots"
    );
  }
  if (result.kind === "timeout") return undefined;
  if (result.kind === "error") return clientCertificateRefusal(result.code, attempt) ?? notTls(result);
  const { peer } = result;
  if (!result.authorized) {
    result.socket.destroy();
    const cert = `its certificate (subject ${dn(peer?.subject)}, issuer ${dn(peer?.issuer)})`;
    const code = result.authorizationError ?? "";
    if (NOT_SIGNED.has(code)) {
      const trusted =
        attempt.caFile === undefined
          ? "any of the system's root CAs (--tls): pass --ca FILE with the CA that signed it"
          : `the CA in ${attempt.caFile} (--ca, JOBWATCH_CA): pass the CA that signed it`;
      return `${cert} is not signed by ${trusted}`;
    }
    if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
      const names = peer?.subjectaltname ?? "no subject alternative names";
      return `${cert} is not valid for ${hostOf(address)} (it names ${names}): dial a name it lists`;
    }
    if (code === "CERT_HAS_EXPIRED") return `${cert} expired on ${peer?.valid_to ?? "?"}`;
    if (code === "CERT_NOT_YET_VALID") return `${cert} is not valid before ${peer?.valid_from ?? "?"}`;
    return `${cert} was refused: ${code}`;
  }
  // TLS 1.3: a server that wants a client certificate says so after the handshake.
  const refusal = await refusalAfterHandshake(result.socket);
  return refusal === undefined ? undefined : clientCertificateRefusal(refusal.code, attempt);
}

/** The server's alert about the client certificate, as advice; undefined for another error. */
function clientCertificateRefusal(code: string, attempt: ConnectionAttempt): string | undefined {
  if (/CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE|CLOSED_AFTER_HANDSHAKE/i.test(code) && attempt.certFile === undefined) {
    return `it requires a client certificate (mTLS): pass ${MTLS_FLAGS}, signed by a CA the server trusts`;
  }
  if (
    /UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|DECRYPT_ERROR|CERTIFICATE_REQUIRED|CLOSED_AFTER_HANDSHAKE/i.test(
      code,
    )
  ) {
    const given = attempt.certFile ?? "the client certificate";
    return (
      `it refused the client certificate ${given}${describeCertificate(attempt)} ` +
      "(--cert): it is not signed by a CA the server trusts (its JOBWATCH_TLS_CLIENT_CA), or is not for client authentication"
    );
  }
  return undefined;
}

/** " (subject CN=worker-1, issuer CN=my-ca)" of the client certificate given; empty if it cannot be read. */
function describeCertificate(attempt: ConnectionAttempt): string {
  const pem = attempt.tls === true || attempt.tls === false ? undefined : attempt.tls.certChain;
  if (pem === undefined) return "";
  try {
    const cert = new X509Certificate(pem);
    return ` (subject ${cert.subject.replace(/\n/g, ", ")}, issuer ${cert.issuer.replace(/\n/g, ", ")})`;
  } catch {
    return "";
  }
}

function notTls(result: { code: string; message: string }): string | undefined {
  if (!NOT_TLS.test(result.code) && !NOT_TLS.test(result.message)) return undefined;
  return "it does not speak TLS (it answered in plaintext): drop --tls, --ca and JOBWATCH_CA";
}

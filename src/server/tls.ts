// TLS and mTLS for the gRPC port: checks the PEM files at startup, then serves them through grpc-js's
// file-watching certificate provider, so a rotated certificate is used for new connections without a restart.

import type { KeyObject } from "node:crypto";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";

/** The PEM files of a TLS listener. */
export interface TlsFiles {
  /** The server's certificate (chain), PEM. */
  certFile: string;
  /** The certificate's private key, PEM. */
  keyFile: string;
  /** With it, clients must present a certificate signed by this CA (mTLS). */
  clientCaFile?: string | undefined;
}

/** How often the files are re-read; a replaced certificate reaches new connections within this. */
const TLS_REFRESH_MS = 2000;

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const code = (error as { code?: string }).code ?? (error as Error).message;
    throw new Error(`cannot read the TLS ${what} file ${file}: ${code}`);
  }
}

function certificate(pem: Buffer, file: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new Error(`the TLS ${what} file ${file} holds no PEM certificate`);
  }
}

/**
 * Reads and checks the files as `serve` starts, so a mistake stops it with one line naming the file:
 * missing or unreadable, not a certificate or key, a key that does not match the certificate, a CA
 * file with no certificate. (At runtime the provider re-reads them; see serverCredentials.)
 */
export function checkTlsFiles(files: TlsFiles): void {
  const cert = certificate(read(files.certFile, "certificate"), files.certFile, "certificate");
  let key: KeyObject;
  try {
    key = createPrivateKey(read(files.keyFile, "key"));
  } catch (error) {
    if ((error as Error).message.startsWith("cannot read")) throw error;
    throw new Error(`the TLS key file ${files.keyFile} holds no PEM private key`);
  }
  if (!cert.checkPrivateKey(key)) {
    throw new Error(`the TLS key file ${files.keyFile} does not match the certificate in ${files.certFile}`);
  }
  if (files.clientCaFile !== undefined) {
    certificate(read(files.clientCaFile, "client CA"), files.clientCaFile, "client CA");
  }
}

/** Server credentials for `files` (checked first), re-read every `refreshMs`. */
export interface TlsCredentials {
  credentials: grpc.ServerCredentials;
  /** Resolves once the first read is in place (before it, grpc-js drops incoming connections). */
  ready(): Promise<void>;
  /** Stops reporting reloads (the file watching itself ends with the server). */
  close(): void;
}

/** What `serverCredentials` says about a certificate read again from disk. */
export interface TlsReloadLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/**
 * Credentials that grpc-js's FileWatcherCertificateProvider keeps current: every `refreshMs` it re-reads
 * the files and new connections get what it read, while open connections (and their watches) keep the
 * certificate they started with. Replace the certificate and key together (write both, or rename into
 * place); a pair caught half-written is refused until the next read finds it whole.
 */
export function serverCredentials(files: TlsFiles, refreshMs = TLS_REFRESH_MS, log?: TlsReloadLog): TlsCredentials {
  checkTlsFiles(files);
  const mtls = files.clientCaFile !== undefined;
  const provider = new grpc.experimental.FileWatcherCertificateProvider({
    certificateFile: files.certFile,
    privateKeyFile: files.keyFile,
    caCertificateFile: files.clientCaFile,
    refreshIntervalMs: refreshMs,
  });
  // grpc-js 1.14 declares (caProvider, identityProvider, requireClientCertificate) but hands the first
  // argument to the identity slot and the second to the CA slot; the identity provider goes first, as
  // the tests (plain TLS and mTLS, both checked) confirm. One provider serves both when there is a CA.
  const credentials = grpc.experimental.createCertificateProviderServerCredentials(
    provider,
    mtls ? provider : null,
    mtls,
  );
  const ready = (): Promise<void> =>
    new Promise((resolve) => {
      // Added after grpc-js's own listener (at bind), so when this one runs the context is in place.
      const listener = (): void => {
        provider.removeIdentityCertificateListener(listener);
        resolve();
      };
      provider.addIdentityCertificateListener(listener);
    });
  // A renewed certificate is worth a line: an operator can see it was picked up, and which one.
  let served: string | undefined;
  const reloaded = (update: { certificate: Buffer; privateKey: Buffer } | null): void => {
    if (update === null || log === undefined) return;
    const pair = `${update.certificate.toString("base64")}:${update.privateKey.toString("base64")}`;
    if (pair === served) return;
    const first = served === undefined;
    served = pair;
    if (first) return;
    try {
      const cert = new X509Certificate(update.certificate);
      if (!cert.checkPrivateKey(createPrivateKey(update.privateKey))) {
        log.warn(
          { file: files.certFile },
          "TLS certificate and key read from disk do not match (half written?); retrying",
        );
        served = undefined;
        return;
      }
      log.info(
        { file: files.certFile, subject: cert.subject, serial: cert.serialNumber, validTo: cert.validTo },
        "TLS certificate reloaded: new connections get it",
      );
    } catch (error) {
      log.warn({ file: files.certFile, err: error }, "TLS certificate read from disk is not usable; retrying");
      served = undefined;
    }
  };
  return {
    credentials,
    // Listening from the bind on (a listener makes the provider watch the files, as grpc-js's own does).
    ready: () => {
      provider.addIdentityCertificateListener(reloaded);
      return ready();
    },
    close: () => provider.removeIdentityCertificateListener(reloaded),
  };
}

// TLS and mTLS on the gRPC port: the client library, the CLI and health over TLS; client certificates
// required with a client CA; a rotated certificate served without a restart while a watch stays open;
// bad certificate files stop serve with one line naming the file.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { connect as tlsConnect } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { type Logger, pino } from "pino";
import { createClient, JobNotFoundError, UnavailableError } from "../src/client/index.js";
import { loadConfig } from "../src/config.js";
import { type Service, startService } from "../src/main.js";
import { checkTlsFiles } from "../src/server/tls.js";
import { makeCa, makePki, type TestPki } from "./helpers/certs.js";
import { cli } from "./helpers/cli.js";

const UNKNOWN_JOB = "3f0e2c1a-9b7d-4c2e-8f1a-2b3c4d5e6f70";

interface Running {
  service: Service;
  token: string;
  dir: string;
}

async function startTls(
  files: { cert: string; key: string },
  clientCa?: string,
  log: Logger = pino({ level: "silent" }),
): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), "jobwatch-tls-db-"));
  const config = loadConfig({
    JOBWATCH_DATABASE_URL: `sqlite:${join(dir, "tls.db")}`,
    JOBWATCH_LISTEN: "127.0.0.1:0",
    JOBWATCH_TLS_CERT: files.cert,
    JOBWATCH_TLS_KEY: files.key,
    JOBWATCH_TLS_CLIENT_CA: clientCa,
    JOBWATCH_ACCESS_LOG: "off",
  });
  let token = "";
  const service = await startService(config, log, (text) => {
    token = /jw_[A-Za-z0-9_-]+/.exec(text)?.[0] ?? token;
  });
  return { service, token, dir };
}

async function stop(running: Running): Promise<void> {
  await running.service.stop();
  rmSync(running.dir, { recursive: true, force: true });
}

/** The serial number of the certificate a new TLS connection to `address` is served. */
function servedSerial(address: string, ca: string): Promise<string> {
  const [host, port] = address.split(":");
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(
      { host, port: Number(port), ca: readFileSync(ca), servername: "localhost", ALPNProtocols: ["h2"] },
      () => {
        const serial = socket.getPeerCertificate().serialNumber;
        socket.destroy();
        resolve(serial);
      },
    );
    socket.on("error", reject);
  });
}

/** Whether a TLS handshake with `address` (optionally presenting a client certificate) completes and stays up. */
function handshake(address: string, ca: string, client?: { cert: string; key: string }): Promise<boolean> {
  const [host, port] = address.split(":");
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host,
      port: Number(port),
      ca: readFileSync(ca),
      servername: "localhost",
      ALPNProtocols: ["h2"],
      ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}),
    });
    // TLS 1.3: the server checks the client certificate after the client thinks it is done, so wait
    // for the server's verdict (an alert closes the socket) before calling it accepted.
    socket.on("secureConnect", () =>
      setTimeout(() => {
        resolve(!socket.destroyed);
        socket.destroy();
      }, 300),
    );
    socket.on("error", () => resolve(false));
    socket.on("close", () => resolve(false));
  });
}

function healthCheck(address: string, credentials: grpc.ChannelCredentials): Promise<void> {
  const client = new grpc.Client(address, credentials);
  return new Promise<void>((resolve, reject) => {
    client.makeUnaryRequest(
      "/grpc.health.v1.Health/Check",
      () => Buffer.alloc(0),
      (b: Buffer) => b,
      {},
      (err) => (err ? reject(err) : resolve()),
    );
  }).finally(() => client.close());
}

describe("TLS", () => {
  let dir: string;
  let pki: TestPki;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "jobwatch-tls-"));
    pki = makePki(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("the client library, health and the CLI (--tls --ca) reach a TLS server; plaintext does not", async () => {
    const running = await startTls(pki.server);
    const { address } = running.service;
    const client = createClient({
      address,
      token: running.token,
      tls: { rootCerts: readFileSync(pki.ca.cert) },
      retry: { maxAttempts: 1 },
    });
    const plain = createClient({ address, token: running.token, retry: { maxAttempts: 1 }, callTimeoutMs: 3000 });
    try {
      await assert.rejects(client.getJob(UNKNOWN_JOB), JobNotFoundError);
      const job = await client.worker.createJob({ operationType: "tls_test", username: "admin" });
      await healthCheck(address, grpc.credentials.createSsl(readFileSync(pki.ca.cert)));
      await assert.rejects(plain.getJob(UNKNOWN_JOB), UnavailableError);

      const got = await cli(["get", job.jobId, "--json", "--tls", "--ca", pki.ca.cert], {
        env: { JOBWATCH_ADDRESS: address, JOBWATCH_TOKEN: running.token },
      });
      assert.equal(got.code, 0, got.stderr);
      assert.equal((JSON.parse(got.stdout) as { jobId: string }).jobId, job.jobId);
      const missing = await cli(["get", job.jobId, "--ca", join(dir, "nope.pem")], {
        env: { JOBWATCH_ADDRESS: address, JOBWATCH_TOKEN: running.token },
      });
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /cannot read --ca file .*nope\.pem: ENOENT/);
    } finally {
      client.close();
      plain.close();
      await stop(running);
    }
  });

  test("mTLS: a client without a certificate (or with one from another CA) fails the handshake", async () => {
    const running = await startTls(pki.server, pki.ca.cert);
    const { address } = running.service;
    const other = makeCa(dir, "other-ca").issue("stranger", { client: true });
    try {
      assert.equal(await handshake(address, pki.ca.cert), false, "no client certificate: refused");
      assert.equal(await handshake(address, pki.ca.cert, other), false, "another CA's certificate: refused");
      assert.equal(await handshake(address, pki.ca.cert, pki.client), true, "the CA's client certificate: accepted");

      const without = createClient({
        address,
        token: running.token,
        tls: { rootCerts: readFileSync(pki.ca.cert) },
        retry: { maxAttempts: 1 },
        callTimeoutMs: 3000,
      });
      await assert.rejects(without.getJob(UNKNOWN_JOB), UnavailableError);
      without.close();
      const withCert = createClient({
        address,
        token: running.token,
        tls: {
          rootCerts: readFileSync(pki.ca.cert),
          certChain: readFileSync(pki.client.cert),
          privateKey: readFileSync(pki.client.key),
        },
        retry: { maxAttempts: 1 },
      });
      await assert.rejects(withCert.getJob(UNKNOWN_JOB), JobNotFoundError);
      withCert.close();

      const got = await cli(["get", UNKNOWN_JOB, "--tls", "--ca", pki.ca.cert], {
        env: {
          JOBWATCH_ADDRESS: address,
          JOBWATCH_TOKEN: running.token,
          JOBWATCH_CERT: pki.client.cert,
          JOBWATCH_KEY: pki.client.key,
        },
      });
      assert.equal(got.code, 4, got.stderr);
      assert.match(got.stderr, /was not found/);
    } finally {
      await stop(running);
    }
  });

  test("a certificate replaced on disk is served to new connections within seconds; an open watch keeps running", async () => {
    const live = { cert: join(dir, "live.pem"), key: join(dir, "live.key") };
    copyFileSync(pki.server.cert, live.cert);
    copyFileSync(pki.server.key, live.key);
    const lines: { msg: string; serial?: string; file?: string }[] = [];
    const running = await startTls(
      live,
      undefined,
      pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) }),
    );
    const { address } = running.service;
    const client = createClient({
      address,
      token: running.token,
      tls: { rootCerts: readFileSync(pki.ca.cert) },
      retry: { maxAttempts: 1 },
    });
    try {
      const first = new X509Certificate(readFileSync(pki.server.cert)).serialNumber;
      assert.equal(await servedSerial(address, pki.ca.cert), first);
      const job = await client.worker.createJob({ operationType: "rotation", username: "admin" });
      const seen: number[] = [];
      const watching = (async () => {
        // No reconnect allowed: the stream opened before the rotation must be the one that ends OK.
        for await (const j of client.watchJob(job.jobId, { onRetry: () => false })) seen.push(j.revision);
      })();
      while (seen.length === 0) await delay(20);

      const next = pki.ca.issue("server-next");
      const second = new X509Certificate(readFileSync(next.cert)).serialNumber;
      // Rotated as an operator should: new files written beside, then renamed into place.
      copyFileSync(next.key, `${live.key}.new`);
      copyFileSync(next.cert, `${live.cert}.new`);
      renameSync(`${live.key}.new`, live.key);
      renameSync(`${live.cert}.new`, live.cert);
      let served = first;
      for (let i = 0; i < 100 && served !== second; i++) {
        await delay(100);
        served = await servedSerial(address, pki.ca.cert).catch(() => served);
      }
      assert.equal(served, second, "the new certificate is served within 10 s");
      const reloads = lines.filter((l) => l.msg.startsWith("TLS certificate reloaded"));
      assert.deepEqual(
        reloads.map((l) => [l.serial, l.file]),
        [[second, live.cert]],
        "one log line for the new certificate, naming its serial and file (none for the first read)",
      );

      await client.worker.startJob(job.jobId);
      await client.worker.completeJob(job.jobId, { rotated: true });
      await watching;
      assert.deepEqual(seen, [1, 2, 3], "the watch opened before the rotation saw every change to the end");
    } finally {
      client.close();
      await stop(running);
    }
  });

  test("bad files: missing, not a key, a key of another certificate, a CA file with no certificate", () => {
    const other = pki.ca.issue("other-server");
    const cases: [Parameters<typeof checkTlsFiles>[0], RegExp][] = [
      [
        { certFile: join(dir, "missing.pem"), keyFile: pki.server.key },
        /cannot read the TLS certificate file .*missing\.pem: ENOENT/,
      ],
      [
        { certFile: pki.server.cert, keyFile: join(dir, "missing.key") },
        /cannot read the TLS key file .*missing\.key: ENOENT/,
      ],
      [
        { certFile: pki.server.key, keyFile: pki.server.key },
        /TLS certificate file .*server\.key holds no PEM certificate/,
      ],
      [{ certFile: pki.server.cert, keyFile: pki.server.cert }, /TLS key file .*server\.pem holds no PEM private key/],
      [
        { certFile: pki.server.cert, keyFile: other.key },
        /TLS key file .*other-server\.key does not match the certificate in .*server\.pem/,
      ],
      [
        { certFile: pki.server.cert, keyFile: pki.server.key, clientCaFile: pki.ca.key },
        /TLS client CA file .*test-ca\.key holds no PEM certificate/,
      ],
    ];
    for (const [files, message] of cases) assert.throws(() => checkTlsFiles(files), message);
  });

  test("serve with a key that does not match its certificate: one line naming the file, exit 1", async () => {
    const other = pki.ca.issue("mismatch");
    const run = await cli(["serve", "--listen", "127.0.0.1:0", "--tls-cert", pki.server.cert, "--tls-key", other.key], {
      env: { JOBWATCH_DATABASE_URL: "sqlite::memory:" },
    });
    assert.equal(run.code, 1, run.stderr);
    const lines = run.stderr.trim().split("\n");
    assert.equal(lines.length, 1, run.stderr);
    assert.match(
      lines[0]!,
      /^jobwatch: the TLS key file .*mismatch\.key does not match the certificate in .*server\.pem$/,
    );
  });
});

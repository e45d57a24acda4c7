// The CLI against TLS servers as a user gets it wrong: each mistake named (plaintext against TLS and back, a CA
// that did not sign the server's certificate, a client certificate missing or refused), and no DEP0123 warning
// on an IP address.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { ExitCode } from "../src/cli/exit-codes.js";
import { loadConfig } from "../src/config.js";
import { type Service, startService } from "../src/main.js";
import { type CertFiles, makeCa, makePki, type TestCa, type TestPki } from "./helpers/certs.js";
import { cli } from "./helpers/cli.js";

const UNKNOWN_JOB = "3f0e2c1a-9b7d-4c2e-8f1a-2b3c4d5e6f70";

interface Running {
  service: Service;
  token: string;
}

async function serve(env: Record<string, string | undefined>): Promise<Running> {
  let token = "";
  const service = await startService(
    loadConfig({
      JOBWATCH_DATABASE_URL: "sqlite::memory:",
      JOBWATCH_LISTEN: "127.0.0.1:0",
      JOBWATCH_ACCESS_LOG: "off",
      ...env,
    }),
    pino({ level: "silent" }),
    (text) => {
      token = /jw_[A-Za-z0-9_-]+/.exec(text)?.[0] ?? token;
    },
  );
  return { service, token };
}

describe("the CLI names what is wrong with a TLS connection", () => {
  let dir: string;
  let pki: TestPki;
  let other: TestCa;
  let strangerCert: CertFiles;
  let tls: Running;
  let mtls: Running;
  let plain: Running;

  const get = (server: Running, flags: string[]) =>
    cli(["get", UNKNOWN_JOB, "--address", server.service.address, "--token", server.token, ...flags]);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "jobwatch-tls-errors-"));
    pki = makePki(dir);
    other = makeCa(dir, "other-ca");
    strangerCert = other.issue("stranger", { client: true });
    const files = { JOBWATCH_TLS_CERT: pki.server.cert, JOBWATCH_TLS_KEY: pki.server.key };
    tls = await serve(files);
    mtls = await serve({ ...files, JOBWATCH_TLS_CLIENT_CA: pki.ca.cert });
    plain = await serve({});
  });

  after(async () => {
    await Promise.all([tls, mtls, plain].map((s) => s?.service.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  test("TLS to 127.0.0.1 with --ca works and prints no DEP0123 warning", async () => {
    for (const [server, flags] of [
      [tls, ["--ca", pki.ca.cert]],
      [mtls, ["--ca", pki.ca.cert, "--cert", pki.client.cert, "--key", pki.client.key]],
    ] as const) {
      const run = await get(server, [...flags]);
      assert.equal(run.code, ExitCode.NOT_FOUND_OR_DENIED, run.stderr);
      assert.match(run.stderr, /was not found/);
      assert.doesNotMatch(run.stderr, /DEP0123|DeprecationWarning/);
    }
  });

  test("plaintext against a TLS server: it speaks TLS, add --ca or --tls", async () => {
    const run = await get(tls, []);
    assert.equal(run.code, ExitCode.UNREACHABLE_OR_TIMEOUT);
    assert.match(run.stderr, /speaks TLS and this command connected without it: add --ca FILE/);
    assert.doesNotMatch(run.stderr, /Is it running\?/);
  });

  test("TLS against a plaintext server: it does not speak TLS", async () => {
    const run = await get(plain, ["--ca", pki.ca.cert]);
    assert.equal(run.code, ExitCode.UNREACHABLE_OR_TIMEOUT);
    assert.match(run.stderr, /does not speak TLS .*drop --tls, --ca and JOBWATCH_CA/);
  });

  test("a CA that did not sign the server's certificate: subject and issuer named", async () => {
    const withOther = await get(tls, ["--ca", other.cert]);
    assert.equal(withOther.code, ExitCode.UNREACHABLE_OR_TIMEOUT);
    assert.match(
      withOther.stderr,
      /its certificate \(subject CN=server, issuer CN=test-ca\) is not signed by the CA in \S+other-ca\.pem \(--ca/,
    );
    const system = await get(tls, ["--tls"]);
    assert.match(
      system.stderr,
      /\(subject CN=server, issuer CN=test-ca\) is not signed by any of the system's root CAs/,
    );
    for (const run of [withOther, system]) assert.equal(run.stderr.trim().split("\n").length, 1, run.stderr);
  });

  test("mTLS: a missing client certificate, and one signed by another CA", async () => {
    const missing = await get(mtls, ["--ca", pki.ca.cert]);
    assert.equal(missing.code, ExitCode.UNREACHABLE_OR_TIMEOUT);
    assert.match(missing.stderr, /requires a client certificate \(mTLS\): pass --cert FILE --key FILE/);
    assert.doesNotMatch(missing.stderr, /SSL routines|openssl/, "no raw OpenSSL error");
    const refused = await get(mtls, ["--ca", pki.ca.cert, "--cert", strangerCert.cert, "--key", strangerCert.key]);
    assert.equal(refused.code, ExitCode.UNREACHABLE_OR_TIMEOUT);
    assert.match(
      refused.stderr,
      /refused the client certificate \S+stranger\.pem \(subject CN=stranger, issuer CN=other-ca\)/,
    );
  });
});

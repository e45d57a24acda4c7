// JWTs from an identity provider beside jobwatch's tokens: a real JWKS server on 127.0.0.1 with keys made
// here (RS256, ES256, EdDSA); each bad token its own UNAUTHENTICATED message and ErrorInfo reason; keys
// refetched for an unknown kid; an unreachable JWKS is UNAVAILABLE for JWTs only; verified tokens cached.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { exportJWK, generateKeyPair, type JWK, SignJWT, UnsecuredJWT } from "jose";
import { pino } from "pino";
import { JwtVerifier } from "../src/auth/jwt.js";
import {
  createClient,
  JobNotFoundError,
  JobStatus,
  type JobwatchClient,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
} from "../src/client/index.js";
import { loadConfig } from "../src/config.js";
import { UnauthenticatedError as DomainUnauthenticated, UnavailableError as DomainUnavailable } from "../src/errors.js";
import { createLogger } from "../src/logger.js";
import { type Service, startService } from "../src/main.js";
import { cli } from "./helpers/cli.js";

const ISSUER = "https://idp.example.test/";
const AUDIENCE = "jobwatch";
const UNKNOWN_JOB = "3f0e2c1a-9b7d-4c2e-8f1a-2b3c4d5e6f70";

type KeyLike = CryptoKey;

interface SigningKey {
  kid: string;
  alg: "RS256" | "ES256" | "EdDSA";
  privateKey: KeyLike;
  jwk: JWK;
}

async function signingKey(kid: string, alg: SigningKey["alg"]): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, alg === "EdDSA" ? { crv: "Ed25519" } : {});
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
}

/** A JWKS endpoint whose keys the test changes; counts requests. */
interface JwksServer {
  url: string;
  keys: JWK[];
  requests: number;
  close(): Promise<void>;
}

async function jwksServer(keys: JWK[]): Promise<JwksServer> {
  const state = { keys, requests: 0 };
  const server: Server = createHttpServer((_req, res) => {
    state.requests++;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  }) as JwksServer;
}

interface Claims {
  [claim: string]: unknown;
}

const nowSec = (): number => Math.floor(Date.now() / 1000);

async function sign(
  key: SigningKey,
  claims: Claims,
  options: { header?: Record<string, unknown> } = {},
): Promise<string> {
  const { iss = ISSUER, aud = AUDIENCE, exp = nowSec() + 600, iat = nowSec(), ...rest } = claims;
  return new SignJWT({ ...rest, iss, aud, exp, iat } as Record<string, unknown>)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "JWT", ...options.header })
    .sign(key.privateKey);
}

/** What a rejected call carries: the client error class, its message and the ErrorInfo reason. */
async function rejection(
  client: JobwatchClient,
  jobId: string,
): Promise<{ error: unknown; reason?: string; message: string }> {
  const error = await client.getJob(jobId).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error !== undefined, "the call was refused");
  const details = (error as { details?: { errorInfo?: { reason: string } } }).details;
  const reason = details?.errorInfo?.reason;
  return { error, message: (error as Error).message, ...(reason === undefined ? {} : { reason }) };
}

describe("JWT", () => {
  let rs: SigningKey;
  let es: SigningKey;
  let ed: SigningKey;
  let unlisted: SigningKey;
  let jwks: JwksServer;
  let dir: string;
  let service: Service;
  let admin: string;
  let aliceJob: string;
  const clients: JobwatchClient[] = [];
  const as = (token: string): JobwatchClient => {
    const client = createClient({ address: service.address, token, retry: { maxAttempts: 1 } });
    clients.push(client);
    return client;
  };

  before(async () => {
    [rs, es, ed, unlisted] = await Promise.all([
      signingKey("rsa-1", "RS256"),
      signingKey("ec-1", "ES256"),
      signingKey("ed-1", "EdDSA"),
      signingKey("rsa-unlisted", "RS256"),
    ]);
    jwks = await jwksServer([rs.jwk, es.jwk, ed.jwk]);
    dir = mkdtempSync(join(tmpdir(), "jobwatch-jwt-"));
    const config = loadConfig({
      JOBWATCH_DATABASE_URL: `sqlite:${join(dir, "jwt.db")}`,
      JOBWATCH_LISTEN: "127.0.0.1:0",
      JOBWATCH_ACCESS_LOG: "off",
      JOBWATCH_JWT_JWKS_URL: jwks.url,
      JOBWATCH_JWT_ISSUER: ISSUER,
      JOBWATCH_JWT_AUDIENCE: AUDIENCE,
    });
    service = await startService(config, pino({ level: "silent" }), (text) => {
      admin = /jw_[A-Za-z0-9_-]+/.exec(text)?.[0] ?? admin;
    });
    aliceJob = (await as(admin).worker.createJob({ operationType: "jwt_test", username: "alice" })).jobId;
  });

  after(async () => {
    for (const client of clients) client.close();
    await service.stop();
    await jwks.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a JWT signed by a key from the JWKS reads a job of its user (RS256, ES256, EdDSA)", async () => {
    for (const key of [rs, es, ed]) {
      const token = await sign(key, { sub: "u-123", preferred_username: "alice", role: "normal_user" });
      const job = await as(token).getJob(aliceJob);
      assert.equal(job.username, "alice", key.alg);
    }
    const bob = await sign(rs, { preferred_username: "bob", role: "normal_user" });
    await assert.rejects(as(bob).getJob(aliceJob), JobNotFoundError, "another user's job is not found");
  });

  test("username falls back to sub; roles: a string or an array, an unknown role grants nothing", async () => {
    const bySub = await sign(es, { sub: "alice", role: ["unknown-role", "normal_user"] });
    assert.equal((await as(bySub).getJob(aliceJob)).username, "alice");
    const unknownRole = await sign(es, { sub: "alice", role: "superuser" });
    await assert.rejects(as(unknownRole).getJob(aliceJob), PermissionDeniedError);
    const noRole = await sign(es, { sub: "alice" });
    await assert.rejects(as(noRole).getJob(aliceJob), PermissionDeniedError);
    const adminRole = await sign(es, { sub: "root", role: ["normal_user", "admin"] });
    assert.equal((await as(adminRole).getJob(aliceJob)).username, "alice", "admin (the larger role) sees every job");
  });

  test("each bad JWT: UNAUTHENTICATED with its own message and ErrorInfo reason", async () => {
    const good = { preferred_username: "alice", role: "normal_user" };
    const otherKeyPair = await signingKey("rsa-1", "RS256"); // the listed kid, another private key
    const cases: [string, string, RegExp, string][] = [
      ["expired", await sign(rs, { ...good, exp: nowSec() - 3600 }), /JWT expired at/, "TOKEN_EXPIRED"],
      [
        "not yet valid",
        await sign(rs, { ...good, nbf: nowSec() + 3600 }),
        /JWT not valid before/,
        "TOKEN_NOT_YET_VALID",
      ],
      [
        "wrong issuer",
        await sign(rs, { ...good, iss: "https://evil.example/" }),
        /issuer 'https:\/\/evil.example\/' is not the expected/,
        "WRONG_ISSUER",
      ],
      [
        "wrong audience",
        await sign(rs, { ...good, aud: "someone-else" }),
        /audience "someone-else" does not include 'jobwatch'/,
        "WRONG_AUDIENCE",
      ],
      ["bad signature", await sign(otherKeyPair, good), /signature does not verify/, "BAD_SIGNATURE"],
      [
        "alg none",
        new UnsecuredJWT({ ...good, iss: ISSUER, aud: AUDIENCE, exp: nowSec() + 600 }).encode(),
        /unsigned JWT \(alg none\) refused/,
        "ALG_NONE",
      ],
      [
        "unsupported critical header",
        [
          Buffer.from(JSON.stringify({ alg: "ES256", kid: "ec-1", crit: ["zz"], zz: 1 })).toString("base64url"),
          Buffer.from(JSON.stringify({ ...good, iss: ISSUER, aud: AUDIENCE, exp: nowSec() + 600 })).toString(
            "base64url",
          ),
          "c2lnbmF0dXJl",
        ].join("."),
        /does not support/,
        "UNSUPPORTED_JWT",
      ],
      [
        "unknown key",
        await sign(unlisted, good),
        /key the identity provider's JWKS does not have \(unknown kid\)/,
        "UNKNOWN_KEY",
      ],
    ];
    const messages = new Set<string>();
    for (const [name, token, message, reason] of cases) {
      const got = await rejection(as(token), aliceJob);
      assert.ok(got.error instanceof UnauthenticatedError, `${name}: ${got.message}`);
      assert.match(got.message, message, name);
      assert.equal(got.reason, reason, name);
      messages.add(got.message.replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/, "<time>"));
    }
    assert.equal(messages.size, cases.length, "every case says something different");
  });

  test("a key added to the JWKS is fetched when a token names its kid", async () => {
    const added = await signingKey("ec-2", "ES256");
    const token = await sign(added, { preferred_username: "alice", role: "normal_user" });
    // Within the refetch cooldown (10 s after the last fetch) an unknown kid is refused without a fetch;
    // the verifier itself, with no cooldown, shows the refetch.
    const verifier = new JwtVerifier(
      { jwksUrl: jwks.url, issuer: ISSUER, audience: AUDIENCE },
      { refetchCooldownMs: 0 },
    );
    await assert.rejects(
      verifier.verify(token),
      (e: unknown) => e instanceof DomainUnauthenticated && e.reason === "UNKNOWN_KEY",
    );
    const loads = verifier.stats.jwksLoads;
    jwks.keys = [...jwks.keys, added.jwk];
    const principal = await verifier.verify(token);
    assert.equal(principal.username, "alice");
    assert.equal(verifier.stats.jwksLoads, loads + 1, "one more fetch, for the new kid");
    assert.ok(principal.expiresAt !== undefined && principal.expiresAt > Date.now(), "the principal carries exp");
  });

  test("a verified JWT is remembered until it expires: a repeated token costs no signature check", async () => {
    let clock = Date.now();
    const verifier = new JwtVerifier({ jwksUrl: jwks.url, issuer: ISSUER, audience: AUDIENCE }, { now: () => clock });
    const token = await sign(rs, {
      preferred_username: "alice",
      role: "normal_user",
      exp: Math.floor(clock / 1000) + 60,
    });
    await verifier.verify(token);
    assert.deepEqual([verifier.stats.cacheMisses, verifier.stats.cacheHits], [1, 0]);
    for (let i = 0; i < 5; i++) await verifier.verify(token);
    assert.deepEqual([verifier.stats.cacheMisses, verifier.stats.cacheHits], [1, 5], "five hits, no new verification");
    clock += 120_000; // past exp and the 30 s clock tolerance
    await assert.rejects(
      verifier.verify(token),
      (e: unknown) => e instanceof DomainUnauthenticated && e.reason === "TOKEN_EXPIRED",
    );
    assert.equal(verifier.stats.cacheMisses, 2, "after exp the token is checked again, and refused");
  });

  test("a JWKS file (air-gapped) works like the URL", async () => {
    const file = join(dir, "jwks.json");
    writeFileSync(file, JSON.stringify({ keys: [ed.jwk] }));
    const verifier = new JwtVerifier({ jwksUrl: file, issuer: ISSUER, audience: AUDIENCE, usernameClaim: "email" });
    const principal = await verifier.verify(await sign(ed, { email: "alice@example.test", role: "admin" }));
    assert.deepEqual([principal.username, principal.role], ["alice@example.test", "admin"]);
  });

  test("a JWKS that cannot be reached: JWT calls UNAVAILABLE (never let in), opaque tokens keep working", async () => {
    const gone = await jwksServer([rs.jwk]);
    const url = gone.url;
    await gone.close();
    const verifier = new JwtVerifier({ jwksUrl: url, issuer: ISSUER, audience: AUDIENCE });
    const token = await sign(rs, { preferred_username: "alice", role: "admin" });
    await assert.rejects(verifier.verify(token), DomainUnavailable);

    const offline = mkdtempSync(join(tmpdir(), "jobwatch-jwt-offline-"));
    let adminToken = "";
    const down = await startService(
      loadConfig({
        JOBWATCH_DATABASE_URL: `sqlite:${join(offline, "jwt.db")}`,
        JOBWATCH_LISTEN: "127.0.0.1:0",
        JOBWATCH_ACCESS_LOG: "off",
        JOBWATCH_JWT_JWKS_URL: url,
        JOBWATCH_JWT_ISSUER: ISSUER,
        JOBWATCH_JWT_AUDIENCE: AUDIENCE,
      }),
      pino({ level: "silent" }),
      (text) => {
        adminToken = /jw_[A-Za-z0-9_-]+/.exec(text)?.[0] ?? adminToken;
      },
    );
    const jwtClient = createClient({ address: down.address, token, retry: { maxAttempts: 1 } });
    const opaque = createClient({ address: down.address, token: adminToken, retry: { maxAttempts: 1 } });
    try {
      await assert.rejects(jwtClient.getJob(UNKNOWN_JOB), UnavailableError);
      await assert.rejects(opaque.getJob(UNKNOWN_JOB), JobNotFoundError, "the opaque token still works");
      // The CLI says to retry once, not "retry shortly. Try again shortly."
      const run = await cli(["get", UNKNOWN_JOB, "--address", down.address, "--token", token]);
      assert.equal(run.code, 5, run.stderr);
      assert.match(run.stderr, /identity provider's keys cannot be loaded; retry shortly\.\n$/);
      assert.doesNotMatch(run.stderr, /Try again shortly/);
    } finally {
      jwtClient.close();
      opaque.close();
      await down.stop();
      rmSync(offline, { recursive: true, force: true });
    }
  });
  test("a JWT up to 30 s past exp (the clock tolerance) keeps a WatchJob open, as unary calls accept it", async () => {
    const token = await sign(rs, { preferred_username: "alice", role: "normal_user", exp: nowSec() - 10 });
    const client = as(token);
    await assert.rejects(client.getJob(UNKNOWN_JOB), JobNotFoundError, "accepted for a unary call");
    const worker = as(admin);
    const job = await worker.worker.createJob({ operationType: "jwt_stream", username: "alice" });
    const seen: JobStatus[] = [];
    const watching = (async () => {
      for await (const update of client.watchJob(job.jobId)) seen.push(update.status);
    })();
    await delay(1500);
    assert.deepEqual(seen, [JobStatus.JOB_STATUS_PENDING], "the stream is still open after its first message");
    await worker.worker.startJob(job.jobId);
    await worker.worker.completeJob(job.jobId, { ok: true });
    await watching;
    assert.equal(seen.at(-1), JobStatus.JOB_STATUS_COMPLETED);
  });

  test("a JWKS file that cannot be read or parsed stops serve with one line naming it", async () => {
    const notJson = join(dir, "not-a-jwks.json");
    writeFileSync(notJson, "<html>not json</html>");
    const notKeys = join(dir, "no-keys.json");
    writeFileSync(notKeys, JSON.stringify({ issuer: ISSUER }));
    const cases: [string, RegExp][] = [
      [
        join(dir, "missing", "jwks.json"),
        /cannot read the JWKS file \S+missing\/jwks\.json \(JOBWATCH_JWT_JWKS_URL\): ENOENT/,
      ],
      [notJson, /the JWKS file \S+not-a-jwks\.json \(JOBWATCH_JWT_JWKS_URL\) is not a JSON Web Key Set/],
      [notKeys, /the JWKS file \S+no-keys\.json \(JOBWATCH_JWT_JWKS_URL\) is not a JSON Web Key Set/],
    ];
    for (const [file, message] of cases) {
      const run = await cli(["serve", "--database-url", "sqlite::memory:", "--listen", "127.0.0.1:0"], {
        env: { JOBWATCH_JWT_JWKS_URL: file, JOBWATCH_JWT_ISSUER: ISSUER, JOBWATCH_JWT_AUDIENCE: AUDIENCE },
      });
      assert.equal(run.code, 1, run.stderr);
      const lines = run.stderr.trim().split("\n");
      assert.equal(lines.length, 1, run.stderr);
      assert.match(lines[0]!, message);
    }
  });

  test("a JWKS URL that is down at startup: a warning naming the URL, serve starts, its line names the JWT settings", async () => {
    const gone = await jwksServer([rs.jwk]);
    const url = gone.url;
    await gone.close();
    const lines: { level: number; msg: string; jwks?: string }[] = [];
    // The server's own logger (its redaction included), writing here.
    const log = createLogger({
      level: "info",
      format: "json",
      destination: { write: (line: string) => lines.push(JSON.parse(line)) },
    });
    const started = await startService(
      loadConfig({
        JOBWATCH_DATABASE_URL: "sqlite::memory:",
        JOBWATCH_LISTEN: "127.0.0.1:0",
        JOBWATCH_ACCESS_LOG: "off",
        JOBWATCH_JWT_JWKS_URL: url,
        JOBWATCH_JWT_ISSUER: ISSUER,
        JOBWATCH_JWT_AUDIENCE: AUDIENCE,
      }),
      log,
      () => undefined,
    );
    try {
      const serving = lines.find((l) => l.msg === "jobwatch is serving") as { jwtSettings?: unknown } | undefined;
      assert.deepEqual(
        serving?.jwtSettings,
        {
          jwks: url,
          issuer: ISSUER,
          audience: AUDIENCE,
          usernameClaim: "preferred_username",
          roleClaim: "role",
        },
        "the start-up line names the JWT settings",
      );
      const warning = lines.find((l) => l.level === 40 && l.msg.includes("JWKS"));
      assert.ok(warning, `a warning about the JWKS: ${JSON.stringify(lines)}`);
      assert.equal(warning.msg, `cannot fetch the JWKS at ${url}: JWT calls are UNAVAILABLE until it answers`);
    } finally {
      await started.stop();
    }
  });
});

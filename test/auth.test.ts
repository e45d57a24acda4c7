// Authentication and permissions: roles, tokens, the authenticator's cache, the token commands, the
// permission table read from the contract, and the interceptor in front of a real grpc-js server.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import pino from "pino";
import { authInterceptor } from "../src/auth/interceptor.js";
import { OpaqueTokenAuthenticator } from "../src/auth/opaque-token-authenticator.js";
import type { Principal } from "../src/auth/principal.js";
import { attachPrincipal, canManageJobs, principalOf } from "../src/auth/principal.js";
import { hasPermission, isRole, PERMISSIONS, permissionsOf, ROLES } from "../src/auth/roles.js";
import { createToken, ensureBootstrapToken, listTokens, revokeToken } from "../src/auth/token-admin.js";
import { generateToken, hashToken, parseToken, tokenMatches } from "../src/auth/tokens.js";
import { formatTokenTable } from "../src/cli/token.js";
import { InvalidArgumentError, NotFoundError, UnauthenticatedError, UnavailableError } from "../src/errors.js";
import { JobServiceService } from "../src/gen/jobwatch/v1/job_service.js";
import { JobWorkerServiceService } from "../src/gen/jobwatch/v1/job_worker_service.js";
import { descriptorSetBytes, fileDescriptorProtos, PERMISSION_TABLE } from "../src/server/contract.js";
import { errorToStatus } from "../src/server/error-status.js";
import { createStore } from "../src/store/open.js";
import type { SqlJobStore } from "../src/store/sql-job-store.js";
import type { JobStore } from "../src/store/store.js";
import type { TestDialect } from "./helpers/databases.js";
import { DIALECTS, freshDatabase } from "./helpers/databases.js";

const silent = pino({ level: "silent" });

/** The token part of the store. */
type TokenStore = Pick<JobStore, "createToken" | "listTokens" | "revokeToken" | "activeTokens" | "countTokens">;

/** One database as two replicas see it: two stores, each with its own connection, on the same data. */
interface SharedDatabase {
  replicaA: SqlJobStore;
  replicaB: SqlJobStore;
  close(): Promise<void>;
}

async function sharedDatabase(dialect: TestDialect): Promise<SharedDatabase> {
  const database = await freshDatabase(dialect);
  const replicaA = createStore(database.url);
  const replicaB = createStore(database.url);
  try {
    await replicaA.migrate();
  } catch (error) {
    await Promise.all([replicaA.close(), replicaB.close()]);
    await database.drop();
    throw error;
  }
  return {
    replicaA,
    replicaB,
    async close() {
      await Promise.all([replicaA.close(), replicaB.close()]);
      await database.drop();
    },
  };
}

const bearer = (token: string) => `Bearer ${token}`;

/** A store wrapper that counts activeTokens() calls, i.e. database round trips of the authenticator. */
function counting(store: TokenStore): { store: TokenStore; loads: () => number } {
  let n = 0;
  return {
    store: {
      ...store,
      activeTokens: () => {
        n++;
        return store.activeTokens();
      },
    },
    loads: () => n,
  };
}

describe("roles", () => {
  test("one table: each role grants exactly its permissions", () => {
    const table = Object.fromEntries(ROLES.map((r) => [r, [...permissionsOf(r)].sort()]));
    assert.deepEqual(table, {
      normal_user: ["query_repos"],
      power_user: ["manage_webhooks", "query_repos"],
      admin: ["manage_jobs", "manage_webhooks", "query_repos", "report_jobs"],
      service: ["report_jobs"],
    });
    assert.deepEqual([...PERMISSIONS].sort(), ["manage_jobs", "manage_webhooks", "query_repos", "report_jobs"]);
  });

  test("unknown roles and permissions grant nothing", () => {
    assert.equal(isRole("admin"), true);
    assert.equal(isRole("root"), false);
    assert.equal(isRole("toString"), false);
    assert.equal(permissionsOf("root").size, 0);
    assert.equal(hasPermission("root", "query_repos"), false);
    assert.equal(hasPermission("admin", "delete_everything"), false);
    assert.equal(hasPermission("service", "query_repos"), false);
    assert.equal(hasPermission("service", "report_jobs"), true);
  });
});

describe("tokens", () => {
  test("a new token is jw_<12 hex id>_<43 base64url secret> and only its hash is kept", () => {
    const t = generateToken();
    assert.match(t.token, /^jw_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    assert.match(t.tokenId, /^[0-9a-f]{12}$/);
    assert.ok(t.token.startsWith(`jw_${t.tokenId}_`));
    assert.match(t.secretHash, /^[0-9a-f]{64}$/);
    assert.equal(t.secretHash, hashToken(t.token));
    assert.ok(!t.secretHash.includes(t.token.slice(16)));
    assert.notEqual(generateToken().token, t.token);
  });

  test("parse returns the id, or undefined for anything malformed", () => {
    const t = generateToken();
    assert.deepEqual(parseToken(t.token), { tokenId: t.tokenId, token: t.token });
    for (const bad of [
      "",
      "jw_",
      t.token.slice(0, -1),
      `${t.token}x`,
      t.token.replace("jw_", "xx_"),
      t.token.toUpperCase(),
      ` ${t.token}`,
      `jw_${t.tokenId}_${"!".repeat(43)}`,
    ]) {
      assert.equal(parseToken(bad), undefined, `parsed ${JSON.stringify(bad)}`);
    }
  });

  test("tokenMatches accepts the token and nothing else", () => {
    const t = generateToken();
    const other = generateToken();
    assert.equal(tokenMatches(t.token, t.secretHash), true);
    assert.equal(tokenMatches(other.token, t.secretHash), false);
    assert.equal(tokenMatches(t.token, "abcd"), false);
    assert.equal(tokenMatches(t.token, ""), false);
  });
});

/**
 * What a client might send to pass as an admin: the header that once carried the principal, with the JSON it
 * held. The principal now lives under a symbol no metadata value can become, so the header is inert.
 */
const FORGED_HEADER = "x-jobwatch-principal";
const FORGED_ADMIN = '{"tokenId":"000000000000","username":"u-admin","role":"admin"}';

describe("principal", () => {
  test("is read from the metadata object it was attached to, never from a metadata value", () => {
    const p: Principal = { tokenId: "0123456789ab", username: "jürgen 山田", role: "normal_user" };
    const md = new grpc.Metadata();
    attachPrincipal(md, p);
    assert.deepEqual(principalOf(md), p);
    const sent = new grpc.Metadata();
    sent.set(FORGED_HEADER, FORGED_ADMIN);
    assert.throws(() => principalOf(sent), UnauthenticatedError);
  });

  test("principalOf throws UnauthenticatedError when the interceptor set nothing", () => {
    assert.throws(() => principalOf(new grpc.Metadata()), UnauthenticatedError);
  });

  test("canManageJobs follows the role table", () => {
    const p = (role: string) => ({ tokenId: "0123456789ab", username: "u", role });
    assert.equal(canManageJobs(p("admin")), true);
    assert.equal(canManageJobs(p("power_user")), false);
    assert.equal(canManageJobs(p("service")), false);
  });
});

describe("contract permission table", () => {
  test("every rpc of both services declares the permission the issue names", () => {
    assert.equal(PERMISSION_TABLE.get("/jobwatch.v1.JobService/GetJobDetails"), "query_repos");
    for (const m of Object.values(JobServiceService)) assert.equal(PERMISSION_TABLE.get(m.path), "query_repos", m.path);
    for (const m of Object.values(JobWorkerServiceService)) {
      assert.equal(PERMISSION_TABLE.get(m.path), "report_jobs", m.path);
    }
    for (const permission of PERMISSION_TABLE.values())
      assert.ok((PERMISSIONS as readonly string[]).includes(permission));
  });

  test("file descriptors are the set's files, byte for byte, with their dependency lists", () => {
    const files = fileDescriptorProtos();
    const names = files.map((f) => fromBinary(FileDescriptorProtoSchema, f).name);
    assert.ok(names.includes("jobwatch/v1/job_service.proto"));
    assert.ok(names.includes("google/protobuf/timestamp.proto"));
    const service = fromBinary(FileDescriptorProtoSchema, files[names.indexOf("jobwatch/v1/job_service.proto")]!);
    assert.ok(service.dependency.includes("jobwatch/v1/options.proto"));
    // Every byte of the set is one of the files (plus its 1-byte tag and length prefix).
    const framed = files.reduce((n, f) => n + f.length + 1 + varintLength(f.length), 0);
    assert.equal(framed, descriptorSetBytes().length);
  });
});

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    len++;
  }
  return len;
}

for (const dialect of DIALECTS) {
  describe(`token commands (${dialect})`, () => {
    let db: SharedDatabase;
    before(async () => {
      db = await sharedDatabase(dialect);
    });
    after(() => db.close());

    test("create validates the user and the role", async () => {
      await assert.rejects(createToken(db.replicaA, { user: " ", role: "admin" }), (e: unknown) => {
        assert.ok(e instanceof InvalidArgumentError);
        assert.match(e.message, /--user: is required/);
        return true;
      });
      await assert.rejects(createToken(db.replicaA, { user: "bob", role: "root" }), (e: unknown) => {
        assert.ok(e instanceof InvalidArgumentError);
        assert.match(e.message, /unknown role 'root'; use one of normal_user, power_user, admin, service/);
        return true;
      });
    });

    test("create, list and revoke (by id or by the whole token)", async () => {
      const a = await createToken(db.replicaA, { user: "carol", role: "power_user" });
      const b = await createToken(db.replicaA, { user: "dave", role: "service" });
      const rows = await listTokens(db.replicaA);
      const carol = rows.find((r) => r.tokenId === a.tokenId);
      assert.deepEqual([carol?.username, carol?.role, carol?.revokedAt], ["carol", "power_user", null]);
      assert.ok(!JSON.stringify(rows).includes(a.token), "list must not show a secret");
      assert.match(formatTokenTable(rows), new RegExp(`${a.tokenId}\\s+carol\\s+power_user\\s+\\S+\\s+active`));

      assert.notEqual((await revokeToken(db.replicaA, a.tokenId)).revokedAt, null);
      assert.notEqual((await revokeToken(db.replicaA, b.token)).revokedAt, null);
      assert.notEqual((await revokeToken(db.replicaA, a.tokenId)).revokedAt, null, "revoke is idempotent");
      assert.match(formatTokenTable(await listTokens(db.replicaA)), new RegExp(`${a.tokenId}.*revoked`));
      await assert.rejects(revokeToken(db.replicaA, "ffffffffffff"), NotFoundError);
      await assert.rejects(revokeToken(db.replicaA, "nope"), /not a token id/);
    });
  });

  describe(`bootstrap token (${dialect})`, () => {
    test("an empty database gets one admin token, and only once", async () => {
      const fresh = await sharedDatabase(dialect);
      try {
        const made = await ensureBootstrapToken(fresh.replicaA);
        assert.ok(made);
        assert.deepEqual([made.username, made.role], ["admin", "admin"]);
        assert.equal(await ensureBootstrapToken(fresh.replicaA), undefined);
        const auth = new OpaqueTokenAuthenticator({ store: fresh.replicaA });
        assert.deepEqual(await auth.authenticate(bearer(made.token)), {
          tokenId: made.tokenId,
          username: "admin",
          role: "admin",
        });
      } finally {
        await fresh.close();
      }
    });
  });

  describe(`authenticator (${dialect})`, () => {
    let db: SharedDatabase;
    before(async () => {
      db = await sharedDatabase(dialect);
    });
    after(() => db.close());

    test("says what to fix for missing, malformed, unknown and revoked tokens", async () => {
      const auth = new OpaqueTokenAuthenticator({ store: db.replicaA });
      await auth.start();
      try {
        const rejects = (header: string | undefined, message: RegExp) =>
          assert.rejects(auth.authenticate(header), (e: unknown) => {
            assert.ok(e instanceof UnauthenticatedError, String(e));
            assert.match(e.message, message);
            return true;
          });
        const t = await createToken(db.replicaA, { user: "erin", role: "normal_user" });
        await rejects(
          undefined,
          /^missing authorization metadata: send 'authorization: Bearer <token>' \(create a token with 'jobwatch token create'\)$/,
        );
        await rejects("", /^missing authorization metadata/);
        await rejects(t.token, /^malformed authorization metadata: expected 'authorization: Bearer <token>'/);
        await rejects(`Basic ${t.token}`, /^malformed authorization metadata/);
        await rejects(`Bearer ${t.token} extra`, /^malformed authorization metadata/);
        await rejects("Bearer abc", /^malformed token: a jobwatch token looks like jw_<id>_<secret>/);
        await rejects(bearer(generateToken().token), /^token rejected: unknown or revoked$/);
        // The right id with another secret is a forgery, not a near miss.
        const forged = `jw_${t.tokenId}_${generateToken().token.slice(16)}`;
        await rejects(bearer(forged), /^token rejected: unknown or revoked$/);

        assert.deepEqual(await auth.authenticate(bearer(t.token)), {
          tokenId: t.tokenId,
          username: "erin",
          role: "normal_user",
        });
        assert.equal((await auth.authenticate(`bearer   ${t.token}`)).username, "erin", "scheme is case-insensitive");
      } finally {
        await auth.stop();
      }
    });

    test("a token just made through another replica works at once", async () => {
      const { store, loads } = counting(db.replicaA);
      const auth = new OpaqueTokenAuthenticator({ store, refreshMs: 60_000 });
      await auth.start();
      try {
        const t = await createToken(db.replicaB, { user: "frank", role: "admin" });
        assert.equal((await auth.authenticate(bearer(t.token))).username, "frank");
        const before = loads();
        for (let i = 0; i < 5; i++) await auth.authenticate(bearer(t.token));
        assert.equal(loads(), before, "known tokens are checked without a database round trip");
      } finally {
        await auth.stop();
      }
    });

    test("an accepted token is remembered until the next reload, and only while the copy is fresh", async () => {
      let now = 1_000_000;
      const auth = new OpaqueTokenAuthenticator({
        store: db.replicaA,
        refreshMs: 3_600_000,
        maxStaleMs: 5000,
        now: () => now,
      });
      await auth.start();
      try {
        const t = await createToken(db.replicaA, { user: "ivy", role: "normal_user" });
        assert.equal(auth.cached(bearer(t.token)), undefined, "not before it was checked");
        const principal = await auth.authenticate(bearer(t.token));
        assert.deepEqual(auth.cached(bearer(t.token)), principal);
        assert.equal(auth.cached(bearer(generateToken().token)), undefined);
        now += 5001;
        assert.equal(auth.cached(bearer(t.token)), undefined, "a stale copy sends every call to authenticate()");
        await auth.refresh();
        assert.equal(auth.cached(bearer(t.token)), undefined, "a reload empties it");
      } finally {
        await auth.stop();
      }
    });

    test("a flood of unknown tokens costs at most a couple of reloads", async () => {
      const { store, loads } = counting(db.replicaA);
      const auth = new OpaqueTokenAuthenticator({ store, refreshMs: 60_000 });
      await auth.start();
      try {
        const before = loads();
        const results = await Promise.allSettled(
          Array.from({ length: 50 }, () => auth.authenticate(bearer(generateToken().token))),
        );
        assert.ok(results.every((r) => r.status === "rejected" && r.reason instanceof UnauthenticatedError));
        assert.ok(loads() - before <= 2, `${loads() - before} reloads`);
      } finally {
        await auth.stop();
      }
    });

    test("a token revoked through another replica stops working once the copy is stale", async () => {
      // A fake clock and no background refresh: the staleness bound alone must catch the revocation.
      let now = 1_000_000;
      const auth = new OpaqueTokenAuthenticator({
        store: db.replicaA,
        refreshMs: 3_600_000,
        maxStaleMs: 5000,
        now: () => now,
      });
      await auth.start();
      try {
        const t = await createToken(db.replicaA, { user: "gina", role: "normal_user" });
        assert.equal((await auth.authenticate(bearer(t.token))).username, "gina");
        await revokeToken(db.replicaB, t.tokenId);
        now += 5001;
        await assert.rejects(auth.authenticate(bearer(t.token)), /token rejected: unknown or revoked/);
      } finally {
        await auth.stop();
      }
    });

    test("the background refresh picks up a revocation made through another replica", { timeout: 20_000 }, async () => {
      const auth = new OpaqueTokenAuthenticator({ store: db.replicaA, refreshMs: 20 });
      await auth.start();
      try {
        const t = await createToken(db.replicaA, { user: "hank", role: "normal_user" });
        assert.equal((await auth.authenticate(bearer(t.token))).username, "hank");
        await revokeToken(db.replicaB, t.tokenId);
        // Polls until rejected; the test's timeout is the only clock.
        while (
          await auth.authenticate(bearer(t.token)).then(
            () => true,
            () => false,
          )
        )
          await delay(10);
      } finally {
        await auth.stop();
      }
    });
  });
}

test("a token table that cannot be read gives UNAVAILABLE, not 'rejected'", async () => {
  const broken: Pick<JobStore, "activeTokens"> = {
    activeTokens: () => Promise.reject(new Error("connect ECONNREFUSED")),
  };
  const auth = new OpaqueTokenAuthenticator({ store: broken });
  await assert.rejects(auth.start(), /ECONNREFUSED/);
  await assert.rejects(auth.authenticate(bearer(generateToken().token)), (e: unknown) => {
    assert.ok(e instanceof UnavailableError);
    assert.match(e.message, /cannot check the token right now/);
    return true;
  });
});

// --- the interceptor, in front of a real grpc-js server with a hand-made test service ---

type Json = Record<string, unknown>;
const json = {
  serialize: (value: Json) => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer): Json => JSON.parse(bytes.toString()) as Json,
};
const method = (path: string, responseStream: boolean) => ({
  path,
  requestStream: false,
  responseStream,
  requestSerialize: json.serialize,
  requestDeserialize: json.deserialize,
  responseSerialize: json.serialize,
  responseDeserialize: json.deserialize,
});
const PROBE: grpc.ServiceDefinition = {
  Whoami: method("/test.v1.Probe/Whoami", false),
  Report: method("/test.v1.Probe/Report", false),
  Undeclared: method("/test.v1.Probe/Undeclared", false),
  Stream: method("/test.v1.Probe/Stream", true),
};
const HEALTH: grpc.ServiceDefinition = { Check: method("/grpc.health.v1.Health/Check", false) };
const PROBE_PERMISSIONS: ReadonlyMap<string, string> = new Map([
  ["/test.v1.Probe/Whoami", "query_repos"],
  ["/test.v1.Probe/Report", "report_jobs"],
  ["/test.v1.Probe/Stream", "query_repos"],
]);

/** What a handler saw: the principal (or the error reading it) and any authorization it was given. */
function seen(call: grpc.ServerUnaryCall<Json, Json> | grpc.ServerWritableStream<Json, Json>): Json {
  let principal: unknown;
  try {
    principal = principalOf(call.metadata);
  } catch (e) {
    principal = (e as Error).name;
  }
  return {
    principal,
    authorization: call.metadata.get("authorization").length,
  };
}

describe("auth interceptor", () => {
  let db: SharedDatabase;
  let server: grpc.Server;
  let client: grpc.Client & Record<string, (...args: unknown[]) => unknown>;
  let health: grpc.Client & Record<string, (...args: unknown[]) => unknown>;
  let auth: OpaqueTokenAuthenticator;
  let handled = 0;
  const tokens: Record<string, string> = {};

  before(async () => {
    db = await sharedDatabase("sqlite");
    auth = new OpaqueTokenAuthenticator({ store: db.replicaA });
    await auth.start();
    for (const role of ROLES) tokens[role] = (await createToken(db.replicaA, { user: `u-${role}`, role })).token;
    server = new grpc.Server({
      interceptors: [
        authInterceptor({
          authenticator: auth,
          permissions: PROBE_PERMISSIONS,
          log: silent,
          toStatus: (error) => errorToStatus(error, silent),
        }),
      ],
    });
    const unary = (call: grpc.ServerUnaryCall<Json, Json>, cb: grpc.sendUnaryData<Json>) => {
      handled++;
      cb(null, seen(call));
    };
    server.addService(PROBE, {
      Whoami: unary,
      Report: unary,
      Undeclared: unary,
      Stream: (call: grpc.ServerWritableStream<Json, Json>) => {
        handled++;
        call.write(seen(call));
        call.write({ n: 2 });
        call.end();
      },
    });
    server.addService(HEALTH, { Check: unary });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    const Probe = grpc.makeGenericClientConstructor(PROBE, "Probe");
    const Health = grpc.makeGenericClientConstructor(HEALTH, "Health");
    client = new Probe(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as typeof client;
    health = new Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as typeof health;
  });

  after(async () => {
    client.close();
    health.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    await auth.stop();
    await db.close();
  });

  const md = (headers: Record<string, string>) => {
    const m = new grpc.Metadata();
    for (const [k, v] of Object.entries(headers)) m.set(k, v);
    return m;
  };
  const unary = (c: typeof client, name: string, metadata: grpc.Metadata) =>
    new Promise<Json>((resolve, reject) =>
      c[name]!({}, metadata, (err: grpc.ServiceError | null, res: Json) => (err ? reject(err) : resolve(res))),
    );
  const stream = (metadata: grpc.Metadata) =>
    new Promise<Json[]>((resolve, reject) => {
      const got: Json[] = [];
      const s = client.Stream!({}, metadata) as grpc.ClientReadableStream<Json>;
      s.on("data", (m: Json) => got.push(m));
      s.on("error", reject);
      s.on("end", () => resolve(got));
    });
  const rejectsWith = async (p: Promise<unknown>, code: grpc.status, details: RegExp) => {
    const before = handled;
    await assert.rejects(p, (e: grpc.ServiceError) => {
      assert.equal(e.code, code, `${grpc.status[e.code]}: ${e.details}`);
      assert.match(e.details, details);
      return true;
    });
    assert.equal(handled, before, "the handler must not run for a rejected call");
  };

  test("missing token -> UNAUTHENTICATED saying how to send one", async () => {
    await rejectsWith(
      unary(client, "Whoami", md({})),
      grpc.status.UNAUTHENTICATED,
      /^missing authorization metadata: send 'authorization: Bearer <token>' \(create a token with 'jobwatch token create'\)$/,
    );
    await rejectsWith(
      unary(client, "Whoami", md({ authorization: "Bearer nope" })),
      grpc.status.UNAUTHENTICATED,
      /malformed token/,
    );
    await rejectsWith(
      unary(client, "Whoami", md({ authorization: bearer(generateToken().token) })),
      grpc.status.UNAUTHENTICATED,
      /^token rejected: unknown or revoked$/,
    );
  });

  test("a role without the rpc's permission -> PERMISSION_DENIED naming the permission", async () => {
    await rejectsWith(
      unary(client, "Report", md({ authorization: bearer(tokens.normal_user!) })),
      grpc.status.PERMISSION_DENIED,
      /^permission denied: test\.v1\.Probe\/Report requires permission 'report_jobs', which role 'normal_user' does not grant$/,
    );
    await rejectsWith(
      unary(client, "Whoami", md({ authorization: bearer(tokens.service!) })),
      grpc.status.PERMISSION_DENIED,
      /requires permission 'query_repos', which role 'service' does not grant/,
    );
    assert.equal(
      ((await unary(client, "Report", md({ authorization: bearer(tokens.service!) }))).principal as Json).role,
      "service",
    );
  });

  test("an rpc with no declared permission is refused, even for admin", async () => {
    await rejectsWith(
      unary(client, "Undeclared", md({ authorization: bearer(tokens.admin!) })),
      grpc.status.PERMISSION_DENIED,
      /^rpc \/test\.v1\.Probe\/Undeclared declares no required_permission; refusing \(fail closed\)$/,
    );
  });

  test("the handler sees the real caller, never a client-sent principal, and not the token", async () => {
    const forged = FORGED_ADMIN;
    const res = await unary(
      client,
      "Whoami",
      md({ authorization: bearer(tokens.normal_user!), [FORGED_HEADER]: forged }),
    );
    assert.deepEqual(res.principal, {
      tokenId: parseToken(tokens.normal_user!)!.tokenId,
      username: "u-normal_user",
      role: "normal_user",
    });
    assert.equal(res.authorization, 0);
    // Without a token the forged header gets nothing.
    await rejectsWith(unary(client, "Whoami", md({ [FORGED_HEADER]: forged })), grpc.status.UNAUTHENTICATED, /missing/);
  });

  test("public services need no token and see no client-sent principal", async () => {
    const forged = FORGED_ADMIN;
    const res = await unary(health, "Check", md({ [FORGED_HEADER]: forged }));
    assert.equal(res.principal, "UnauthenticatedError");
  });

  test("a server-streaming call is rejected cleanly, and served when allowed", async () => {
    await rejectsWith(stream(md({})), grpc.status.UNAUTHENTICATED, /missing authorization metadata/);
    await rejectsWith(
      stream(md({ authorization: bearer(tokens.service!) })),
      grpc.status.PERMISSION_DENIED,
      /requires permission 'query_repos'/,
    );
    const got = await stream(md({ authorization: bearer(tokens.power_user!) }));
    assert.equal(got.length, 2);
    assert.equal((got[0]!.principal as Json).username, "u-power_user");
  });

  test("a revoked token is refused", async () => {
    const t = await createToken(db.replicaA, { user: "ivan", role: "admin" });
    assert.equal(
      ((await unary(client, "Whoami", md({ authorization: bearer(t.token) }))).principal as Json).username,
      "ivan",
    );
    await revokeToken(db.replicaB, t.tokenId);
    await auth.refresh();
    await rejectsWith(
      unary(client, "Whoami", md({ authorization: bearer(t.token) })),
      grpc.status.UNAUTHENTICATED,
      /unknown or revoked/,
    );
  });
});

// Storage faults as a client sees them: UNAVAILABLE naming the database (never INTERNAL), a killed connection
// retried once where safe, health NOT_SERVING while the database cannot serve and SERVING again by itself,
// open watches ended UNAVAILABLE when the change feed is lost, health told by the call that met a fault (not
// its timer). SQLite: read-only and full; MySQL: a proxy.
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { after, before, describe, test } from "node:test";
import type { ServiceError } from "@grpc/grpc-js";
import * as grpc from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { sql } from "kysely";
import { JobStatus } from "../src/gen/jobwatch/v1/job.js";
import { DIALECTS, TEST_MYSQL_URL } from "./helpers/databases.js";
import { healthCheck, waitForHealth } from "./helpers/health.js";
import type { TestServer } from "./helpers/server.js";
import { startTestServer } from "./helpers/server.js";
import type { TcpProxy } from "./helpers/tcp-proxy.js";
import { startProxy } from "./helpers/tcp-proxy.js";

/** A client of grpc.health.v1.Health's Watch (grpc-health-check's definition). */
const HealthWatchClient = grpc.makeGenericClientConstructor(healthService, "grpc.health.v1.Health") as unknown as new (
  address: string,
  credentials: grpc.ChannelCredentials,
) => grpc.Client & { watch(request: { service: string }): grpc.ClientReadableStream<{ status: string }> };

/** The ServiceError a call rejected with. */
async function failure(call: Promise<unknown>): Promise<ServiceError> {
  try {
    await call;
  } catch (error) {
    return error as ServiceError;
  }
  assert.fail("the call succeeded");
}

/** Asserts a storage-fault answer: UNAVAILABLE, and the message blames the database. */
function assertDatabaseUnavailable(error: ServiceError, reason: RegExp): void {
  assert.equal(error.code, status.UNAVAILABLE, `${status[error.code]}: ${error.details}`);
  assert.match(error.details, /^database unavailable: /);
  assert.match(error.details, reason);
}

describe("sqlite: storage faults", () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ dialect: "sqlite", healthIntervalMs: 100 });
  });
  after(() => s.stop());

  test("a read-only database: writes UNAVAILABLE, reads still answer, health NOT_SERVING, then SERVING by itself", async () => {
    const w = s.as(s.tokens.worker).worker;
    const a = s.as(s.tokens.admin).jobs;
    const { job } = await w.createJob({ operationType: "op", username: "alice" });
    // The server's own connection: query_only makes every write fail as on a read-only file (SQLITE_READONLY).
    await sql`pragma query_only = on`.execute(s.store.db);
    try {
      const error = await failure(w.startJob({ jobId: job!.jobId }));
      assertDatabaseUnavailable(error, /read-only \(SQLITE_READONLY/);
      assertDatabaseUnavailable(await failure(w.createJob({ operationType: "op", username: "bob" })), /read-only/);
      assert.equal((await a.getJobDetails({ jobId: job!.jobId })).job!.status, JobStatus.JOB_STATUS_PENDING);
      await waitForHealth(s.address, "NOT_SERVING", 5000);
    } finally {
      await sql`pragma query_only = off`.execute(s.store.db);
    }
    // Nobody writes meanwhile: health's write probe finds out that writes work again.
    await waitForHealth(s.address, "SERVING", 5000);
    assert.equal((await w.startJob({ jobId: job!.jobId })).job!.status, JobStatus.JOB_STATUS_RUNNING);
  });

  test("a full disk: writes UNAVAILABLE saying so, health NOT_SERVING, SERVING again once there is room", async () => {
    const w = s.as(s.tokens.worker).worker;
    const pages = Number(
      (await sql<{ page_count: number }>`pragma page_count`.execute(s.store.db)).rows[0]!.page_count,
    );
    // The page limit plays the full disk: the next write that needs a page fails with SQLITE_FULL.
    await sql.raw(`pragma max_page_count = ${pages}`).execute(s.store.db);
    try {
      let error: ServiceError | undefined;
      for (let i = 0; i < 200 && error === undefined; i++) {
        error = await w
          .createJob({ operationType: "fill", username: "alice", resource: `r${i}` })
          .then(() => undefined)
          .catch((e: ServiceError) => e);
      }
      assert.ok(error, "the page limit was never reached");
      assertDatabaseUnavailable(error, /disk is full \(SQLITE_FULL\)/);
      await waitForHealth(s.address, "NOT_SERVING", 5000);
    } finally {
      await sql.raw("pragma max_page_count = 1073741823").execute(s.store.db);
    }
    await waitForHealth(s.address, "SERVING", 5000);
    await w.createJob({ operationType: "fill", username: "alice", resource: "after" });
  });
});

describe("mysql: storage faults", { skip: TEST_MYSQL_URL ? false : "JOBWATCH_TEST_MYSQL_URL is not set" }, () => {
  let proxy: TcpProxy;
  let s: TestServer;
  before(async () => {
    const target = new URL(TEST_MYSQL_URL!);
    proxy = await startProxy(`${target.hostname}:${target.port || 3306}`);
    s = await startTestServer({ dialect: "mysql", healthIntervalMs: 100, connectVia: (url) => proxy.via(url) });
  });
  after(async () => {
    await proxy.up();
    await s.stop();
    await proxy.close();
  });

  test("a connection killed under a read is retried once on a fresh one: the call answers", async () => {
    const w = s.as(s.tokens.worker).worker;
    const { job } = await w.createJob({ operationType: "op", username: "alice" });
    // The read is a prepared statement: its id travels in the COMMAND_STMT_EXECUTE packet (command 0x17
    // after the 4-byte header), not in the statement's text.
    const cut = proxy.cutNext(new RegExp(`^[\\s\\S]{4}\\x17[\\s\\S]*${job!.jobId}`));
    const got = await s.as(s.tokens.admin).jobs.getJobDetails({ jobId: job!.jobId });
    await cut;
    assert.equal(got.job!.jobId, job!.jobId);
  });

  test("a connection killed under StartJob before COMMIT (its read or its update) is retried once: the call succeeds, applied once", async () => {
    const w = s.as(s.tokens.worker).worker;
    for (const statement of [/select .* from `jobs` where `job_id`/, /update `jobs`/]) {
      const { job } = await w.createJob({ operationType: "op", username: "alice" });
      const cut = proxy.cutNext(statement);
      const started = await w.startJob({ jobId: job!.jobId });
      await cut;
      assert.equal(started.job!.revision, 2);
      const history = await s.as(s.tokens.admin).jobs.getJobHistory({ jobId: job!.jobId });
      assert.deepEqual(
        history.events.map((e) => e.revision),
        [1, 2],
      );
    }
  });

  test("a connection killed as StartJob commits: UNAVAILABLE naming the database (the outcome is unknown), never INTERNAL", async () => {
    const w = s.as(s.tokens.worker).worker;
    const { job } = await w.createJob({ operationType: "op", username: "alice" });
    // The COMMIT never reaches the server, which rolls back; the client cannot know which happened.
    // A whole packet that is the statement COMMIT (no query text merely containing the word).
    const cut = proxy.cutNext(/^[\s\S]{5}commit$/i);
    const error = await failure(w.startJob({ jobId: job!.jobId }));
    await cut;
    assertDatabaseUnavailable(error, /connection to the database was lost \(PROTOCOL_CONNECTION_LOST\)/);
    const seen = await s.as(s.tokens.admin).jobs.getJobDetails({ jobId: job!.jobId });
    assert.equal(seen.job!.status, JobStatus.JOB_STATUS_PENDING);
    assert.equal((await w.startJob({ jobId: job!.jobId })).job!.revision, 2);
  });

  test("the database gone: calls UNAVAILABLE, health NOT_SERVING, watches ended UNAVAILABLE; all back by itself", async () => {
    const w = s.as(s.tokens.worker).worker;
    const { job } = await w.createJob({ operationType: "op", username: "alice" });
    const watch = s.watch(s.tokens.alice, { jobId: job!.jobId });
    await watch.received(1);
    assert.equal(await healthCheck(s.address), "SERVING");
    await proxy.down();
    try {
      assertDatabaseUnavailable(
        await failure(s.as(s.tokens.admin).jobs.getJobDetails({ jobId: job!.jobId })),
        /refuses connections \(ECONNREFUSED\)/,
      );
      assertDatabaseUnavailable(await failure(w.startJob({ jobId: job!.jobId })), /ECONNREFUSED/);
      await waitForHealth(s.address, "NOT_SERVING", 5000);
      // The change feed cannot be read: after its bound (5 s) the watch ends so its client resumes elsewhere.
      const ended = await watch.done;
      assert.equal(ended.code, status.UNAVAILABLE, ended.details);
      assert.match(ended.details, /database unavailable.*after_revision=1/);
    } finally {
      await proxy.up();
    }
    await waitForHealth(s.address, "SERVING", 10_000);
    assert.equal((await w.startJob({ jobId: job!.jobId })).job!.status, JobStatus.JOB_STATUS_RUNNING);
  });
});

/**
 * Opens grpc.health.v1 Watch on `address` and resolves, once it has said SERVING, with a promise of the
 * moment (performance.now()) it first says NOT_SERVING.
 */
async function watchForNotServing(address: string): Promise<{ notServing: Promise<number>; close(): void }> {
  const client = new HealthWatchClient(address, grpc.credentials.createInsecure());
  const stream = client.watch({ service: "" });
  let serving!: () => void;
  const seen = new Promise<void>((resolve) => (serving = resolve));
  const notServing = new Promise<number>((resolve, reject) => {
    stream.on("data", (message: { status: string }) => {
      if (message.status === "SERVING") serving();
      if (message.status === "NOT_SERVING") resolve(performance.now());
    });
    stream.on("error", (error: Error) => {
      if ((error as ServiceError).code !== status.CANCELLED) reject(error);
    });
  });
  notServing.catch(() => undefined);
  await seen;
  return {
    notServing,
    close: () => {
      stream.cancel();
      client.close();
    },
  };
}

// Health with its default interval (2 s): it must hear of a fault from the call that met it, not from its
// timer. Each server is started just before its fault, so its periodic ping is far off.
for (const dialect of DIALECTS) {
  describe(`${dialect}: health hears of a storage fault from the call that met it`, () => {
    test("a failed write makes health NOT_SERVING well before the default health interval's ping", async () => {
      const target = dialect === "mysql" ? new URL(TEST_MYSQL_URL!) : undefined;
      const proxy = target ? await startProxy(`${target.hostname}:${target.port || 3306}`) : undefined;
      const s = await startTestServer({ dialect, ...(proxy ? { connectVia: (url: string) => proxy.via(url) } : {}) });
      const health = await watchForNotServing(s.address);
      try {
        const w = s.as(s.tokens.worker).worker;
        const { job } = await w.createJob({ operationType: "op", username: "alice" });
        // SQLite: a read-only connection (SQLITE_READONLY); MySQL: the database gone (ECONNREFUSED).
        if (proxy) await proxy.down();
        else await sql`pragma query_only = on`.execute(s.store.db);
        const sent = performance.now();
        assertDatabaseUnavailable(await failure(w.startJob({ jobId: job!.jobId })), /read-only|ECONNREFUSED/);
        const ms = (await health.notServing) - sent;
        // Heard from the call, not from the timer: its first ping is 2 s after the server started, so a
        // timer-driven NOT_SERVING comes 1.5 s or more after this call; the call's own report takes a few ms
        // (under 100 on a quiet machine), with room here for a machine loaded by other work.
        assert.ok(ms < 1000, `health became NOT_SERVING ${Math.round(ms)} ms after the failed call`);
      } finally {
        health.close();
        if (proxy) await proxy.up();
        else await sql`pragma query_only = off`.execute(s.store.db);
        await s.stop();
        await proxy?.close();
      }
    });
  });
}

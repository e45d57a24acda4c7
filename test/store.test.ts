// The job store against real databases: SQLite always, MySQL/MariaDB when JOBWATCH_TEST_MYSQL_URL is set.
import { describe, test } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { sql } from "kysely";
import type { CompiledQuery, DatabaseConnection } from "kysely";
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from "../src/errors.js";
import { openDatabase } from "../src/store/connect.js";
import type { Job, JobStatus } from "../src/store/job.js";
import { createStore } from "../src/store/sql-job-store.js";
import type { SqlJobStore, SqlJobStoreOptions } from "../src/store/sql-job-store.js";
import { DIALECTS, freshDatabase } from "./helpers/databases.js";
import type { TestDialect } from "./helpers/databases.js";

/** A clock the tests move by hand, shared by every store of a test (like replicas with synced clocks). */
class Clock {
  t = Date.UTC(2030, 0, 1);
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

/** A fresh migrated database with `count` stores on it (each its own connection or pool, like replicas). */
async function setup(t: TestContext, dialect: TestDialect, count = 1, options: SqlJobStoreOptions = {}) {
  const database = await freshDatabase(dialect);
  const clock = new Clock();
  const stores: SqlJobStore[] = [];
  t.after(async () => {
    for (const s of stores) await s.close();
    await database.drop();
  });
  for (let i = 0; i < count; i++) stores.push(createStore(database.url, { ...options, now: clock.now }));
  await stores[0]!.migrate();
  return { store: stores[0]!, stores, clock, url: database.url };
}

/** Asserts a FailedPreconditionError naming `status` in upper case. */
async function rejectsStatus(promise: Promise<unknown>, status: JobStatus, jobId: string): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof FailedPreconditionError, `expected FailedPreconditionError, got ${String(e)}`);
    assert.match(e.message, new RegExp(`\\b${status.toUpperCase()}\\b`));
    assert.equal(e.type, "STATUS");
    assert.equal(e.subject, jobId);
    return true;
  });
}

/** Event revisions of a job straight from job_events (feed and history), sorted. */
async function eventRevisions(store: SqlJobStore, jobId: string): Promise<number[]> {
  const rows = await store.db.selectFrom("job_events").select("revision").where("job_id", "=", jobId).execute();
  return rows.map((r) => Number(r.revision)).sort((a, b) => a - b);
}

/** Drives a new job into `status`. */
async function jobIn(store: SqlJobStore, status: JobStatus, user = "alice"): Promise<Job> {
  const job = await store.createJob({ operationType: "index_repo", username: user });
  switch (status) {
    case "pending":
      return job;
    case "running":
      return store.startJob(job.jobId);
    case "completed":
      await store.startJob(job.jobId);
      return store.completeJob(job.jobId, { files: 3 });
    case "failed":
      return store.failJob(job.jobId, "boom");
    case "cancelled":
      return store.cancelJob(job.jobId);
  }
}

/**
 * Runs `hook` after every statement `store` sends through its Kysely connection (transaction statements
 * included), while the caller awaits: a deterministic way to let another replica write between them.
 */
function afterEachStatement(store: SqlJobStore, hook: () => Promise<void>): void {
  const executor = store.db.getExecutor();
  const provide = executor.provideConnection.bind(executor);
  executor.provideConnection = <T>(consumer: (connection: DatabaseConnection) => Promise<T>): Promise<T> =>
    provide((connection) =>
      consumer({
        async executeQuery<R>(query: CompiledQuery) {
          const result = await connection.executeQuery<R>(query);
          await hook();
          return result;
        },
        streamQuery: (query, chunkSize) => connection.streamQuery(query, chunkSize),
      }),
    );
}

/** Makes the next job_events deletions fail once `allowed` rows have been deleted, like a process dying mid-sweep. */
async function dieAfterDeleting(store: SqlJobStore, allowed: number): Promise<void> {
  if (store.dialect === "sqlite") {
    await sql`create table deleted_log (seq integer)`.execute(store.db);
    await sql
      .raw(
        `create trigger die_mid_sweep before delete on job_events begin
           select raise(abort, 'process died') where (select count(*) from deleted_log) >= ${allowed};
           insert into deleted_log values (old.seq);
         end`,
      )
      .execute(store.db);
  } else {
    await sql`create table deleted_log (seq bigint) engine=InnoDB`.execute(store.db);
    await sql
      .raw(
        `create trigger die_mid_sweep before delete on job_events for each row begin
           if (select count(*) from deleted_log) >= ${allowed} then
             signal sqlstate '45000' set message_text = 'process died';
           end if;
           insert into deleted_log values (old.seq);
         end`,
      )
      .execute(store.db);
  }
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("openDatabase", () => {
  test("an unknown scheme is one line naming the accepted forms", () => {
    assert.throws(
      () => openDatabase("postgres://u:secret@h/db"),
      (e: Error) => {
        assert.match(e.message, /sqlite:<path>, sqlite::memory: or mysql:\/\/user:pass@host:3306\/db/);
        assert.doesNotMatch(e.message, /secret/);
        assert.doesNotMatch(e.message, /\n/);
        return true;
      },
    );
  });

  test("a relative sqlite path is taken from the working directory and its folder is created", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "jobwatch-connect-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, "nested", "deeper", "jobwatch.db");
    const store = createStore(`sqlite:${relative(process.cwd(), file)}`);
    await store.migrate();
    await store.createJob({ operationType: "op", username: "u" });
    await store.close();
    assert.ok((await stat(file)).isFile());
  });

  test("sqlite::memory: works", async () => {
    const store = createStore("sqlite::memory:");
    await store.migrate();
    const job = await store.createJob({ operationType: "op", username: "u" });
    assert.equal((await store.getJob(job.jobId))?.jobId, job.jobId);
    await store.close();
  });
});

for (const dialect of DIALECTS) {
  describe(`store on ${dialect}`, () => {
    test("migrate is safe when two processes start at once, and again later", async (t) => {
      const database = await freshDatabase(dialect);
      const a = createStore(database.url);
      const b = createStore(database.url);
      t.after(async () => {
        await a.close();
        await b.close();
        await database.drop();
      });
      await Promise.all([a.migrate(), b.migrate()]);
      await a.migrate();
      const job = await a.createJob({ operationType: "op", username: "u" });
      assert.equal((await b.getJob(job.jobId))?.status, "pending");
    });

    test("createJob and getJob", async (t) => {
      const { store, clock } = await setup(t, dialect);
      const job = await store.createJob({ operationType: "index_repo", username: "alice", resource: "repo-1" });
      assert.match(job.jobId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const expected: Job = {
        jobId: job.jobId,
        operationType: "index_repo",
        status: "pending",
        username: "alice",
        resource: "repo-1",
        createdAt: clock.t,
        updatedAt: clock.t,
        startedAt: null,
        completedAt: null,
        lastHeartbeatAt: null,
        progress: 0,
        phase: null,
        detail: null,
        result: null,
        error: null,
        cancelRequested: false,
        cancelReason: null,
        revision: 1,
      };
      assert.deepEqual(job, expected);
      assert.deepEqual(await store.getJob(job.jobId), expected);
      assert.equal(await store.getJob("00000000-0000-4000-8000-000000000000"), undefined);
      await store.ping();
    });

    test("a job runs to COMPLETED, one revision per change", async (t) => {
      const { store, clock } = await setup(t, dialect);
      const created = await store.createJob({ operationType: "index_repo", username: "alice" });
      clock.advance(10);
      const started = await store.startJob(created.jobId);
      assert.equal(started.status, "running");
      assert.equal(started.startedAt, clock.t);
      assert.equal(started.lastHeartbeatAt, clock.t);
      assert.equal(started.revision, 2);

      clock.advance(10);
      const p1 = await store.reportProgress(created.jobId, 30, "semantic", "150/500 files indexed");
      assert.deepEqual([p1.progress, p1.phase, p1.detail, p1.revision], [30, "semantic", "150/500 files indexed", 3]);
      assert.equal(p1.lastHeartbeatAt, clock.t);
      // Phase and detail left out keep what they were.
      const p2 = await store.reportProgress(created.jobId, 40);
      assert.deepEqual([p2.progress, p2.phase, p2.detail, p2.revision], [40, "semantic", "150/500 files indexed", 4]);

      clock.advance(10);
      const beat = await store.heartbeat(created.jobId);
      assert.equal(beat.revision, 5);
      assert.equal(beat.lastHeartbeatAt, clock.t);
      assert.equal(beat.progress, 40);

      clock.advance(10);
      const result = { files: 500, nested: { ok: true, list: [1, "two", null] } };
      const done = await store.completeJob(created.jobId, result);
      assert.equal(done.status, "completed");
      assert.equal(done.progress, 100);
      assert.equal(done.completedAt, clock.t);
      assert.equal(done.updatedAt, clock.t);
      assert.equal(done.revision, 6);
      assert.deepEqual(done.result, result);
      assert.deepEqual(await store.getJob(created.jobId), done);
      assert.deepEqual(await eventRevisions(store, created.jobId), range(1, 6));

      const nullResult = await store.completeJob((await jobIn(store, "running")).jobId, null);
      assert.equal(nullResult.result, null);
      assert.equal((await store.getJob(nullResult.jobId))?.result, null);
    });

    test("failJob from PENDING and from RUNNING", async (t) => {
      const { store, clock } = await setup(t, dialect);
      const pending = await jobIn(store, "pending");
      clock.advance(5);
      const failed = await store.failJob(pending.jobId, "repository not reachable");
      assert.deepEqual(
        [failed.status, failed.error, failed.completedAt, failed.revision],
        ["failed", "repository not reachable", clock.t, 2],
      );
      const running = await jobIn(store, "running");
      await store.reportProgress(running.jobId, 55);
      const failed2 = await store.failJob(running.jobId, "disk full");
      assert.deepEqual(
        [failed2.status, failed2.error, failed2.progress, failed2.revision],
        ["failed", "disk full", 55, 4],
      );
    });

    test("cancellation: PENDING at once, RUNNING by request and confirmation, CANCELLED idempotent", async (t) => {
      const { store, clock } = await setup(t, dialect);
      const pending = await jobIn(store, "pending");
      clock.advance(5);
      const cancelled = await store.cancelJob(pending.jobId, "not needed");
      assert.deepEqual(
        [cancelled.status, cancelled.completedAt, cancelled.cancelReason, cancelled.revision],
        ["cancelled", clock.t, "not needed", 2],
      );
      assert.deepEqual(await store.cancelJob(pending.jobId), cancelled);

      const running = await jobIn(store, "running");
      const requested = await store.cancelJob(running.jobId, "user asked");
      assert.deepEqual(
        [
          requested.status,
          requested.cancelRequested,
          requested.cancelReason,
          requested.completedAt,
          requested.revision,
        ],
        ["running", true, "user asked", null, 3],
      );
      // A second request changes nothing.
      assert.deepEqual(await store.cancelJob(running.jobId, "again"), requested);
      // The worker still reports until it notices.
      const progressed = await store.reportProgress(running.jobId, 70);
      assert.equal(progressed.cancelRequested, true);
      const confirmed = await store.markCancelled(running.jobId);
      assert.deepEqual([confirmed.status, confirmed.cancelRequested, confirmed.revision], ["cancelled", true, 5]);
      assert.deepEqual(await store.cancelJob(running.jobId), confirmed);

      // A worker that finishes anyway ends the job as it reports; the request stays visible.
      const finisher = await jobIn(store, "running");
      await store.cancelJob(finisher.jobId);
      const finished = await store.completeJob(finisher.jobId, { partial: false });
      assert.deepEqual([finished.status, finished.cancelRequested], ["completed", true]);
    });

    test("illegal transitions fail with FAILED_PRECONDITION naming the status; unknown ids are NOT_FOUND", async (t) => {
      const { store } = await setup(t, dialect);
      type Op = (s: SqlJobStore, id: string) => Promise<Job>;
      const ops: Record<string, { op: Op; legal: JobStatus[] }> = {
        startJob: { op: (s, id) => s.startJob(id), legal: ["pending"] },
        reportProgress: { op: (s, id) => s.reportProgress(id, 10), legal: ["running"] },
        heartbeat: { op: (s, id) => s.heartbeat(id), legal: ["running"] },
        completeJob: { op: (s, id) => s.completeJob(id, null), legal: ["pending", "running"] },
        failJob: { op: (s, id) => s.failJob(id, "x"), legal: ["pending", "running"] },
        markCancelled: { op: (s, id) => s.markCancelled(id), legal: [] }, // only RUNNING with a request
        cancelJob: { op: (s, id) => s.cancelJob(id), legal: ["pending", "running", "cancelled"] },
      };
      const statuses: JobStatus[] = ["pending", "running", "completed", "failed", "cancelled"];
      for (const [name, { op, legal }] of Object.entries(ops)) {
        for (const status of statuses) {
          const job = await jobIn(store, status);
          if (legal.includes(status)) {
            await op(store, job.jobId);
          } else {
            await rejectsStatus(op(store, job.jobId), status, job.jobId);
            assert.equal(
              (await store.getJob(job.jobId))?.revision,
              job.revision,
              `${name} on ${status} changed nothing`,
            );
          }
        }
        await assert.rejects(op(store, "00000000-0000-4000-8000-000000000000"), {
          name: "NotFoundError",
          message:
            "job 00000000-0000-4000-8000-000000000000 not found (finished jobs are removed after the retention period)",
        });
      }

      const running = await jobIn(store, "running");
      await assert.rejects(store.markCancelled(running.jobId), /RUNNING.*CancelJob/);
      const pending = await jobIn(store, "pending");
      await assert.rejects(store.reportProgress(pending.jobId, 5), {
        message: "cannot report progress on a job in PENDING status; call StartJob first",
      });
      const completed = await jobIn(store, "completed");
      await assert.rejects(store.cancelJob(completed.jobId), { message: "cannot cancel a job in COMPLETED status" });
      await assert.rejects(store.completeJob(completed.jobId, null), {
        message: "cannot complete a job in COMPLETED status; the job has already finished",
      });
    });

    test("markCancelled without a cancel request names the status and who can request one, not an RPC the worker cannot call", async (t) => {
      const { store } = await setup(t, dialect);
      const running = await jobIn(store, "running");
      await assert.rejects(store.markCancelled(running.jobId), {
        message:
          "cannot mark a job in RUNNING status as cancelled; no cancellation was requested: only a job whose " +
          "cancellation was requested (CancelJob by its owner or an admin) can be marked cancelled",
      });
      const pending = await jobIn(store, "pending");
      await assert.rejects(store.markCancelled(pending.jobId), {
        message:
          "cannot mark a job in PENDING status as cancelled; no cancellation was requested: only a RUNNING job whose " +
          "cancellation was requested (CancelJob by its owner or an admin) can be marked cancelled",
      });
    });

    test("50 concurrent progress reports: every one applied, no revision reused", async (t) => {
      const { store } = await setup(t, dialect);
      const job = await jobIn(store, "running");
      const results = await Promise.all(range(1, 50).map((p) => store.reportProgress(job.jobId, p)));
      assert.deepEqual(
        results.map((r) => r.revision).sort((a, b) => a - b),
        range(3, 52),
      );
      assert.equal((await store.getJob(job.jobId))?.revision, 52);
      assert.deepEqual(await eventRevisions(store, job.jobId), range(1, 52));
    });

    test("two replicas racing CompleteJob against FailJob: exactly one wins each job", async (t) => {
      const { stores } = await setup(t, dialect, 2);
      const [a, b] = [stores[0]!, stores[1]!];
      const jobs = await Promise.all(range(1, 20).map(() => jobIn(a, "running")));
      const outcomes = await Promise.all(
        jobs.map((job) => Promise.allSettled([a.completeJob(job.jobId, { by: "a" }), b.failJob(job.jobId, "by b")])),
      );
      for (const [i, [completed, failed]] of outcomes.entries()) {
        const jobId = jobs[i]!.jobId;
        const wins = [completed, failed].filter((o) => o.status === "fulfilled");
        assert.equal(wins.length, 1, `job ${jobId}: exactly one terminal transition wins`);
        const loser = [completed, failed].find((o) => o.status === "rejected") as PromiseRejectedResult;
        const final = await a.getJob(jobId);
        assert.ok(loser.reason instanceof FailedPreconditionError);
        assert.match(loser.reason.message, new RegExp(final!.status.toUpperCase()));
        assert.equal(final!.revision, 3);
        assert.deepEqual(await eventRevisions(a, jobId), [1, 2, 3]);
      }
    });

    test("request_id: a retried CreateJob returns the same job and creates nothing", async (t) => {
      const { stores } = await setup(t, dialect, 2);
      const [a, b] = [stores[0]!, stores[1]!];
      const requestId = "6f1c2c1e-2d1b-4c55-9d43-0f2c2a8b7e10";
      const input = { operationType: "index_repo", username: "alice", requestId, resource: "repo-r" };
      const first = await a.createJob(input);
      assert.deepEqual(await b.createJob(input), first);
      // Racing retries through two replicas still make one job.
      const other = "0a0c3f7d-8a54-4d0f-a2a7-1c4b9e3f5d21";
      const racing = await Promise.all(
        range(1, 6).map((i) =>
          (i % 2 ? a : b).createJob({ operationType: "index_repo", username: "alice", requestId: other }),
        ),
      );
      assert.equal(new Set(racing.map((j) => j.jobId)).size, 1);
      const count = await a.db
        .selectFrom("jobs")
        .select((eb) => eb.fn.countAll().as("n"))
        .executeTakeFirstOrThrow();
      assert.equal(Number(count.n), 2);
    });

    test("one active job per (operation_type, resource): ALREADY_EXISTS naming it, free again once finished", async (t) => {
      const { stores } = await setup(t, dialect, 2);
      const [a, b] = [stores[0]!, stores[1]!];
      const input = { operationType: "index_repo", username: "alice", resource: "repo-a" };
      const first = await a.createJob(input);
      await assert.rejects(b.createJob({ ...input, username: "bob" }), (e: unknown) => {
        assert.ok(e instanceof AlreadyExistsError);
        assert.equal(e.reason, "ACTIVE_JOB_EXISTS");
        assert.deepEqual(e.metadata, { job_id: first.jobId });
        assert.match(e.message, new RegExp(first.jobId));
        return true;
      });
      // Other resources, other operations and jobs without a resource are not limited.
      await a.createJob({ ...input, resource: "repo-b" });
      await a.createJob({ ...input, operationType: "remove_repo" });
      await a.createJob({ operationType: "index_repo", username: "alice" });
      await a.createJob({ operationType: "index_repo", username: "alice" });

      await a.startJob(first.jobId);
      await assert.rejects(a.createJob(input), AlreadyExistsError);
      await a.completeJob(first.jobId, null);
      const second = await b.createJob(input);
      await b.cancelJob(second.jobId);
      const third = await a.createJob(input);
      await a.failJob(third.jobId, "x");

      // Replicas racing to create: one job, everyone else told which.
      const racing = await Promise.allSettled(range(1, 6).map((i) => (i % 2 ? a : b).createJob(input)));
      const made = racing.filter((r) => r.status === "fulfilled") as PromiseFulfilledResult<Job>[];
      assert.equal(made.length, 1);
      for (const r of racing) {
        if (r.status === "rejected") {
          assert.ok(r.reason instanceof AlreadyExistsError);
          assert.equal(r.reason.metadata.job_id, made[0]!.value.jobId);
        }
      }
    });

    test("history: status changes always, progress at most once a second, heartbeats never", async (t) => {
      const { store, clock } = await setup(t, dialect);
      const job = await jobIn(store, "running");
      for (let p = 1; p <= 20; p++) await store.reportProgress(job.jobId, p, "fts");
      await store.heartbeat(job.jobId);
      clock.advance(1000);
      await store.reportProgress(job.jobId, 21, "fts", "21/100");
      clock.advance(10);
      await store.reportProgress(job.jobId, 22);
      await store.cancelJob(job.jobId, "stop");
      await store.failJob(job.jobId, "gave up");

      const history = await store.getHistory(job.jobId);
      assert.deepEqual(
        history.map((e) => [e.revision, e.status, e.progress, e.phase, e.cancelRequested, e.error]),
        [
          [1, "pending", 0, null, false, null],
          [2, "running", 0, null, false, null],
          [3, "running", 1, "fts", false, null],
          [24, "running", 21, "fts", false, null],
          [26, "running", 22, "fts", true, null],
          [27, "failed", 22, "fts", true, "gave up"],
        ],
      );
      assert.equal(history[3]!.detail, "21/100");
      assert.equal(history[3]!.at, clock.t - 10);
      // The feed still has every revision.
      assert.deepEqual(await eventRevisions(store, job.jobId), range(1, 27));
      assert.deepEqual(await store.getHistory("00000000-0000-4000-8000-000000000000"), []);
    });

    test("history: a phase change is recorded at once, like a status change; progress within a phase is still throttled", async (t) => {
      const { store, clock } = await setup(t, dialect);
      const job = await jobIn(store, "running");
      await store.reportProgress(job.jobId, 40, "semantic");
      clock.advance(300);
      await store.reportProgress(job.jobId, 40, "fts");
      clock.advance(300);
      await store.reportProgress(job.jobId, 41, "fts");
      assert.deepEqual(
        (await store.getHistory(job.jobId)).map((e) => [e.revision, e.status, e.progress, e.phase]),
        [
          [1, "pending", 0, null],
          [2, "running", 0, null],
          [3, "running", 40, "semantic"],
          [4, "running", 40, "fts"],
        ],
      );
    });

    test("listJobs: newest first, keyset pages with no repeats or skips while jobs are created", async (t) => {
      const { store, clock } = await setup(t, dialect);
      const original: Job[] = [];
      for (let i = 0; i < 25; i++) {
        // Several jobs share a millisecond, so job_id has to break ties.
        if (i % 3 === 0) clock.advance(1);
        original.push(await store.createJob({ operationType: i % 2 ? "index" : "remove", username: "pager" }));
      }
      await store.createJob({ operationType: "index", username: "someone-else" });
      const expected = [...original]
        .sort((x, y) => y.createdAt - x.createdAt || (y.jobId < x.jobId ? -1 : 1))
        .map((j) => j.jobId);

      const seen: string[] = [];
      let after: { createdAt: number; jobId: string } | undefined;
      for (;;) {
        const page = await store.listJobs({ username: "pager", limit: 7, after });
        if (page.length === 0) break;
        seen.push(...page.map((j) => j.jobId));
        const last = page[page.length - 1]!;
        after = { createdAt: last.createdAt, jobId: last.jobId };
        // New jobs keep arriving while the user pages (newer than every cursor: they never show up).
        await store.createJob({ operationType: "index", username: "pager" });
        clock.advance(1);
        await store.createJob({ operationType: "index", username: "pager" });
      }
      const newOnes = seen.filter((id) => !expected.includes(id));
      assert.deepEqual(
        seen.filter((id) => expected.includes(id)),
        expected,
      );
      assert.equal(new Set(seen).size, seen.length, "no job twice");
      assert.deepEqual(newOnes, []);

      // Filters.
      const byOp = await store.listJobs({ username: "pager", operationType: "remove", limit: 100 });
      assert.ok(byOp.length === 13 && byOp.every((j) => j.operationType === "remove"));
      await store.startJob(original[0]!.jobId);
      await store.failJob(original[1]!.jobId, "x");
      const byStatus = await store.listJobs({ statuses: ["running", "failed"], limit: 100 });
      assert.deepEqual(new Set(byStatus.map((j) => j.jobId)), new Set([original[0]!.jobId, original[1]!.jobId]));
      const window = await store.listJobs({
        username: "pager",
        createdAfter: original[3]!.createdAt,
        createdBefore: original[6]!.createdAt,
        limit: 100,
      });
      assert.deepEqual(new Set(window.map((j) => j.jobId)), new Set(original.slice(3, 6).map((j) => j.jobId)));
      const everyone = await store.listJobs({ limit: 100 });
      assert.ok(everyone.some((j) => j.username === "someone-else"));
      assert.equal((await store.listJobs({ username: "pager", limit: 3 })).length, 3);
    });

    test("statistics: counts by status and operation, success rate and duration percentiles in the window", async (t) => {
      const { store, clock } = await setup(t, dialect);
      // Outside the window: finished two days ago.
      const old = await jobIn(store, "completed", "stat");
      clock.advance(2 * 24 * 3600_000);
      // Nine completed jobs taking 100..900 ms from start, and one failed from PENDING after 1000 ms.
      for (let i = 1; i <= 9; i++) {
        const job = await store.createJob({ operationType: "index", username: "stat" });
        clock.advance(50);
        await store.startJob(job.jobId);
        clock.advance(i * 100);
        await store.completeJob(job.jobId, null);
      }
      const slow = await store.createJob({ operationType: "remove", username: "stat" });
      clock.advance(1000);
      await store.failJob(slow.jobId, "x");
      await jobIn(store, "running", "stat");
      await jobIn(store, "pending", "stat");
      await jobIn(store, "cancelled", "other");

      const stats = await store.getStatistics("stat", 24 * 3600_000);
      assert.deepEqual(stats.byStatus, { pending: 1, running: 1, completed: 10, failed: 1, cancelled: 0 });
      assert.equal(stats.total, 13);
      assert.deepEqual(stats.byOperationType, { index_repo: 3, index: 9, remove: 1 });
      assert.equal(stats.windowStart, clock.t - 24 * 3600_000);
      assert.equal(stats.finishedInWindow, 10);
      assert.equal(stats.completedInWindow, 9);
      assert.equal(stats.p50DurationMs, 500);
      assert.equal(stats.p95DurationMs, 900);
      assert.equal(old.status, "completed");

      const all = await store.getStatistics(undefined, 24 * 3600_000);
      assert.equal(all.total, 14);
      assert.equal(all.byStatus.cancelled, 1);
      assert.equal(all.finishedInWindow, 11);

      const empty = await store.getStatistics("nobody", 1000);
      assert.deepEqual(empty.byStatus, { pending: 0, running: 0, completed: 0, failed: 0, cancelled: 0 });
      assert.deepEqual(
        [empty.total, empty.finishedInWindow, empty.p50DurationMs, empty.p95DurationMs],
        [0, 0, null, null],
      );
    });

    test("statistics are one snapshot: another replica writing between its queries cannot make the figures disagree", async (t) => {
      const { stores } = await setup(t, dialect, 2);
      const [a, b] = [stores[0]!, stores[1]!];
      for (let i = 0; i < 3; i++) await jobIn(a, "completed", "stat");
      let armed = true;
      let writes = 0;
      // After each statement of a's getStatistics, replica b creates and completes a job of a new operation.
      afterEachStatement(a, async () => {
        if (!armed) return;
        writes++;
        const job = await b.createJob({ operationType: `op-${writes}`, username: "stat" });
        await b.completeJob(job.jobId, null);
      });
      const stats = await a.getStatistics("stat", 24 * 3600_000);
      armed = false;
      const byOperation = Object.values(stats.byOperationType).reduce((x, y) => x + y, 0);
      assert.equal(
        byOperation,
        stats.total,
        `by operation ${JSON.stringify(stats.byOperationType)} against total ${stats.total}`,
      );
      assert.equal(stats.byStatus.completed, stats.total);
      assert.equal(stats.finishedInWindow, stats.total);
      assert.equal(stats.completedInWindow, stats.total);
      assert.equal((await a.getStatistics("stat", 24 * 3600_000)).total, 3 + writes);
    });

    test("stale sweep: two replicas racing move each silent job once", async (t) => {
      const { stores, clock } = await setup(t, dialect, 2);
      const [a, b] = [stores[0]!, stores[1]!];
      const silent = await Promise.all(range(1, 10).map(() => jobIn(a, "running")));
      const heardAt = clock.t;
      clock.advance(60_000);
      const alive = await jobIn(a, "running");
      const pending = await jobIn(a, "pending");
      clock.advance(1000);
      const staleBefore = clock.t - 30_000;
      const [movedA, movedB] = await Promise.all([a.failStaleJobs(staleBefore), b.failStaleJobs(staleBefore)]);
      const moved = [...movedA, ...movedB].map((j) => j.jobId);
      assert.equal(moved.length, 10, "each job moved once");
      assert.deepEqual(new Set(moved), new Set(silent.map((j) => j.jobId)));
      for (const job of silent) {
        const now = await a.getJob(job.jobId);
        assert.equal(now?.status, "failed");
        assert.equal(now?.error, `worker stopped reporting: no heartbeat since ${new Date(heardAt).toISOString()}`);
        assert.equal(now?.revision, 3);
        assert.deepEqual(await eventRevisions(a, job.jobId), [1, 2, 3]);
      }
      assert.equal((await a.getJob(alive.jobId))?.status, "running");
      assert.equal((await a.getJob(pending.jobId))?.status, "pending");
      assert.deepEqual(await a.failStaleJobs(staleBefore), []);
    });

    test("cancel grace sweep: two replicas racing cancel each unconfirmed job once", async (t) => {
      const { stores, clock } = await setup(t, dialect, 2);
      const [a, b] = [stores[0]!, stores[1]!];
      const unconfirmed = await Promise.all(range(1, 8).map(() => jobIn(a, "running")));
      for (const job of unconfirmed) await a.cancelJob(job.jobId, "stop");
      const notAsked = await jobIn(a, "running");
      clock.advance(10 * 60_000);
      const recent = await jobIn(a, "running");
      await a.cancelJob(recent.jobId);
      const requestedBefore = clock.t - 5 * 60_000;
      const [movedA, movedB] = await Promise.all([
        a.cancelUnconfirmed(requestedBefore),
        b.cancelUnconfirmed(requestedBefore),
      ]);
      const moved = [...movedA, ...movedB];
      assert.equal(moved.length, 8);
      assert.deepEqual(new Set(moved.map((j) => j.jobId)), new Set(unconfirmed.map((j) => j.jobId)));
      for (const job of moved) {
        assert.equal(job.status, "cancelled");
        assert.equal(job.error, "cancelled: the worker never confirmed the cancellation within the grace period");
        assert.equal(job.revision, 4);
        assert.deepEqual(await a.getJob(job.jobId), job);
      }
      assert.equal((await a.getJob(notAsked.jobId))?.status, "running");
      assert.equal((await a.getJob(recent.jobId))?.status, "running");
    });

    test("deleteExpired: old finished jobs and their events go in batches; active and recent ones stay", async (t) => {
      const { store, clock } = await setup(t, dialect);
      const oldFinished = [
        await jobIn(store, "completed"),
        await jobIn(store, "failed"),
        await jobIn(store, "cancelled"),
      ];
      const oldPending = await jobIn(store, "pending");
      const oldRunning = await jobIn(store, "running");
      clock.advance(40 * 24 * 3600_000);
      const recent = await jobIn(store, "completed");
      const before = clock.t - 30 * 24 * 3600_000;

      assert.equal(await store.deleteExpired(before, 2), 2);
      assert.equal(await store.deleteExpired(before, 2), 1);
      assert.equal(await store.deleteExpired(before, 2), 0);
      for (const job of oldFinished) {
        assert.equal(await store.getJob(job.jobId), undefined);
        assert.deepEqual(await eventRevisions(store, job.jobId), []);
        await assert.rejects(store.cancelJob(job.jobId), NotFoundError);
      }
      for (const job of [oldPending, oldRunning, recent]) assert.ok(await store.getJob(job.jobId));
      assert.equal((await store.getHistory(recent.jobId)).length, 3);
    });

    test("deleteExpired deletes events in bounded chunks, each committed: a sweep cut short leaves the job to the next", async (t) => {
      const { store, clock } = await setup(t, dialect, 1, { retentionChunkRows: 5 });
      const chatty = await jobIn(store, "running");
      for (let p = 1; p <= 11; p++) {
        clock.advance(1000);
        await store.reportProgress(chatty.jobId, p * 5);
      }
      await store.completeJob(chatty.jobId, null);
      const quiet = await jobIn(store, "completed");
      const ids = [chatty.jobId, quiet.jobId];
      const countEvents = async (): Promise<number> => {
        const row = await store.db
          .selectFrom("job_events")
          .select((eb) => eb.fn.countAll<number | string>().as("n"))
          .where("job_id", "in", ids)
          .executeTakeFirstOrThrow();
        return Number(row.n);
      };
      assert.equal(await countEvents(), 14 + 3);
      clock.advance(40 * 24 * 3600_000);
      const before = clock.t - 30 * 24 * 3600_000;

      // The process "dies" while deleting the 8th event: the first chunk of 5 is gone for good.
      await dieAfterDeleting(store, 7);
      await assert.rejects(store.deleteExpired(before, 10), /process died/);
      assert.equal(await countEvents(), 17 - 5);
      for (const id of ids) assert.ok(await store.getJob(id), "the job row stays until its events are gone");

      // The next sweep carries on.
      await sql`drop trigger die_mid_sweep`.execute(store.db);
      assert.equal(await store.deleteExpired(before, 10), 2);
      assert.equal(await countEvents(), 0);
      for (const id of ids) assert.equal(await store.getJob(id), undefined);
      assert.equal(await store.deleteExpired(before, 10), 0);
    });

    test("change feed: seq order, snapshots at each revision, pruning of feed-only events", async (t) => {
      const { stores, clock } = await setup(t, dialect, 2);
      const [a, b] = [stores[0]!, stores[1]!];
      const start = await b.latestSeq();
      const job = await a.createJob({ operationType: "op", username: "u" });
      await a.startJob(job.jobId);
      await a.reportProgress(job.jobId, 10);
      await a.heartbeat(job.jobId);
      await a.completeJob(job.jobId, { ok: 1 });

      const feed = await b.readFeed(start, 100);
      assert.deepEqual(
        feed.map((e) => [e.jobId, e.revision]),
        range(1, 5).map((r) => [job.jobId, r]),
      );
      assert.ok(feed.every((e, i) => i === 0 || e.seq > feed[i - 1]!.seq));
      assert.equal(await b.latestSeq(), feed[4]!.seq);
      assert.deepEqual(await b.readFeed(feed[1]!.seq, 2), feed.slice(2, 4));
      assert.deepEqual(await b.readFeed(feed[4]!.seq, 100), []);

      const snaps = await b.snapshotsAt([feed[4]!.seq, feed[0]!.seq, 999_999]);
      assert.deepEqual(
        snaps.map((s) => [s.revision, s.status]),
        [
          [5, "completed"],
          [1, "pending"],
        ],
      );
      assert.deepEqual(snaps[0], await b.getJob(job.jobId));
      assert.deepEqual(
        (await b.snapshotsBetween(job.jobId, 1, 5)).map((s) => [s.revision, s.status, s.progress]),
        [
          [2, "running", 0],
          [3, "running", 10],
          [4, "running", 10],
        ],
      );

      // Only the heartbeat is feed-only; progress 10 was the first progress and is history.
      clock.advance(11 * 60_000);
      assert.equal(await a.pruneFeed(clock.t - 10 * 60_000), 1);
      assert.deepEqual(await eventRevisions(a, job.jobId), [1, 2, 3, 5]);
      assert.equal((await a.getHistory(job.jobId)).length, 4);
    });

    if (dialect === "mysql") {
      test("readFeed shows committed events only; latestSeq stops before a fresh hole and steps over a rolled-back one", async (t) => {
        const { stores, clock } = await setup(t, dialect, 2);
        const [a, b] = [stores[0]!, stores[1]!];
        const job = await a.createJob({ operationType: "op", username: "u" });
        const cursor = await b.latestSeq();
        const event = {
          job_id: job.jobId,
          at: clock.t,
          status: "pending",
          progress: 0,
          phase: null,
          detail: null,
          cancel_requested: 0,
          error: null,
          recorded: 0,
          snapshot: "{}",
        };

        // A transaction takes a seq and holds it uncommitted while a later event commits.
        const holdOpen = async (revision: number, outcome: "commit" | "rollback"): Promise<void> => {
          let inserted!: () => void;
          let finish!: () => void;
          const insertedP = new Promise<void>((r) => (inserted = r));
          const finishP = new Promise<void>((r) => (finish = r));
          const tx = a.db
            .transaction()
            .execute(async (trx) => {
              await trx
                .insertInto("job_events")
                .values({ ...event, revision })
                .execute();
              inserted();
              await finishP;
              if (outcome === "rollback") throw new Error("rolled back on purpose");
            })
            .catch((e: Error) => assert.equal(e.message, "rolled back on purpose"));
          await insertedP;
          t.after(() => finish());
          holds.push({ finish, tx });
        };
        const holds: { finish: () => void; tx: Promise<unknown> }[] = [];

        await holdOpen(100, "commit");
        await a.startJob(job.jobId); // revision 2 commits with a higher seq
        assert.deepEqual(
          (await b.readFeed(cursor, 100)).map((e) => e.revision),
          [2],
          "the uncommitted seq is not visible yet; the reader sees the hole",
        );
        assert.equal(await b.latestSeq(), cursor, "latestSeq stops before the uncommitted seq");
        holds[0]!.finish();
        await holds[0]!.tx;
        assert.deepEqual(
          (await b.readFeed(cursor, 100)).map((e) => e.revision),
          [100, 2],
        );

        const cursor2 = (await b.readFeed(cursor, 100)).at(-1)!.seq;
        await holdOpen(200, "rollback");
        await a.reportProgress(job.jobId, 5);
        holds[1]!.finish();
        await holds[1]!.tx;
        assert.equal(await b.latestSeq(), cursor2, "latestSeq stops before a fresh hole");
        clock.advance(3000);
        assert.equal(
          await b.latestSeq(),
          (await b.readFeed(cursor2, 100)).at(-1)!.seq,
          "a hole older than the grace period is a rollback: latestSeq steps over it",
        );
      });
    }

    test("tokens: create, list, revoke once, active ones, count", async (t) => {
      const { store, clock } = await setup(t, dialect);
      assert.equal(await store.countTokens(), 0);
      const t1 = await store.createToken({ tokenId: "tok1", username: "admin", role: "admin", secretHash: "h1" });
      clock.advance(1);
      await store.createToken({ tokenId: "tok2", username: "worker", role: "service", secretHash: "h2" });
      assert.deepEqual(t1, {
        tokenId: "tok1",
        username: "admin",
        role: "admin",
        createdAt: clock.t - 1,
        revokedAt: null,
      });
      assert.deepEqual(
        (await store.listTokens()).map((x) => x.tokenId),
        ["tok1", "tok2"],
      );
      clock.advance(5);
      const revoked = await store.revokeToken("tok1");
      assert.equal(revoked.revokedAt, clock.t);
      clock.advance(5);
      assert.equal(
        (await store.revokeToken("tok1")).revokedAt,
        revoked.revokedAt,
        "revoking twice keeps the first time",
      );
      await assert.rejects(store.revokeToken("nope"), { name: "NotFoundError", message: "token nope not found" });
      assert.deepEqual(await store.activeTokens(), [
        { tokenId: "tok2", username: "worker", role: "service", secretHash: "h2" },
      ]);
      assert.equal(await store.countTokens(), 2);
      await assert.rejects(store.createToken({ tokenId: "tok3", username: "x", role: "admin", secretHash: "h2" }));
    });
  });
}

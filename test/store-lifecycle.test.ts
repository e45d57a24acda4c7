// Job transitions against real databases: legal moves, refused ones, and concurrent writers.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FailedPreconditionError } from "../src/errors.js";
import type { Job, JobStatus } from "../src/store/job.js";
import type { SqlJobStore } from "../src/store/sql-job-store.js";
import { DIALECTS } from "./helpers/databases.js";
import { eventRevisions, jobIn, range, rejectsStatus, setup } from "./helpers/store.js";

for (const dialect of DIALECTS) {
  describe(`store lifecycle on ${dialect}`, () => {
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
      await assert.rejects(store.markCancelled(running.jobId), /RUNNING.*no cancellation was requested/);
      const pending = await jobIn(store, "pending");
      // The store says what state forbids what; which rpc to call is the service layer's to add
      // (test/worker-refusals.test.ts asserts what a worker sees).
      await assert.rejects(store.reportProgress(pending.jobId, 5), {
        message: "cannot report progress on a job in PENDING status; the job must be started first",
        refusal: { refused: "cannot report progress on a job in PENDING status", status: "PENDING", missing: "start" },
      });
      const completed = await jobIn(store, "completed");
      await assert.rejects(store.cancelJob(completed.jobId), { message: "cannot cancel a job in COMPLETED status" });
      await assert.rejects(store.completeJob(completed.jobId, null), {
        message: "cannot complete a job in COMPLETED status; the job has already finished",
      });
    });

    test("markCancelled without a cancel request names the status and the missing request, in the store's words", async (t) => {
      const { store } = await setup(t, dialect);
      const running = await jobIn(store, "running");
      await assert.rejects(store.markCancelled(running.jobId), {
        message:
          "cannot mark a job in RUNNING status as cancelled; no cancellation was requested: only a job whose " +
          "cancellation was requested can be marked cancelled",
        refusal: {
          refused: "cannot mark a job in RUNNING status as cancelled",
          status: "RUNNING",
          missing: "request_cancellation",
        },
      });
      const pending = await jobIn(store, "pending");
      await assert.rejects(store.markCancelled(pending.jobId), {
        message:
          "cannot mark a job in PENDING status as cancelled; no cancellation was requested: only a RUNNING job whose " +
          "cancellation was requested can be marked cancelled",
        refusal: {
          refused: "cannot mark a job in PENDING status as cancelled",
          status: "PENDING",
          missing: "request_cancellation",
        },
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

    test("transitions of 60 jobs at once, with refusals among them: each job's own order, only the refused fail", async (t) => {
      const { store } = await setup(t, dialect);
      const running = await Promise.all(range(1, 50).map(() => jobIn(store, "running", "grouped")));
      const pending = await Promise.all(range(1, 10).map(() => jobIn(store, "pending", "grouped")));
      // All in one turn: they go into a few transactions together (transition's groups).
      const calls = [
        ...running.flatMap((job) => range(1, 4).map((p) => store.reportProgress(job.jobId, p * 10))),
        ...pending.map((job) => store.reportProgress(job.jobId, 50)),
        ...running.slice(0, 5).map((job) => store.completeJob(job.jobId, { ok: true })),
      ];
      const settled = await Promise.allSettled(calls);
      const refused = settled.filter((o) => o.status === "rejected") as PromiseRejectedResult[];
      // Progress on a PENDING job is refused; nothing else is, and the refusals roll nothing else back.
      assert.equal(refused.length, 10, refused.map((o) => String(o.reason)).join("; "));
      for (const o of refused) assert.match(String(o.reason), /PENDING/);
      for (const [i, job] of running.entries()) {
        const now = await store.getJob(job.jobId);
        // Created (1), started (2), four reports (3..6), completed (7) for the first five.
        const last = i < 5 ? 7 : 6;
        assert.equal(now?.revision, last);
        assert.equal(now?.progress, i < 5 ? 100 : 40);
        assert.deepEqual(await eventRevisions(store, job.jobId), range(1, last));
      }
      for (const job of pending) assert.equal((await store.getJob(job.jobId))?.revision, 1);
      const stats = await store.getStatistics("grouped", 24 * 3600_000);
      assert.deepEqual(stats.byStatus, { pending: 10, running: 45, completed: 5, failed: 0, cancelled: 0 });
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
  });
}

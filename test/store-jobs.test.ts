// Job creation, idempotency, active-job uniqueness, history and listing against real databases.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AlreadyExistsError } from "../src/errors.js";
import type { Job } from "../src/store/job.js";
import { DIALECTS } from "./helpers/databases.js";
import { eventRevisions, jobIn, range, setup } from "./helpers/store.js";

for (const dialect of DIALECTS) {
  describe(`store jobs on ${dialect}`, () => {
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

    test("reads of one turn go together: the same job is one object, owners still apart, writes seen", async (t) => {
      const { store } = await setup(t, dialect);
      const mine = await Promise.all(range(1, 30).map(() => jobIn(store, "running", "alice")));
      const theirs = await jobIn(store, "running", "bob");
      // 100 reads of one job in one turn: one Job object for all (its response is then made once).
      const same = await Promise.all(range(1, 100).map(() => store.getJob(mine[0]!.jobId, "alice")));
      assert.ok(
        same.every((job) => job === same[0]),
        "every read of the job in the turn got the same object",
      );
      assert.equal(same[0]?.jobId, mine[0]!.jobId);
      // Distinct jobs and owners in one turn: each read its own job; another user's job is not alice's.
      const mixed = await Promise.all([
        ...mine.map((job) => store.getJob(job.jobId, "alice")),
        store.getJob(theirs.jobId, "alice"),
        store.getJob(theirs.jobId, "bob"),
        store.getJob(theirs.jobId),
        store.getJob("00000000-0000-4000-8000-000000000000", "alice"),
      ]);
      assert.deepEqual(
        mixed.slice(0, 30).map((job) => job?.jobId),
        mine.map((job) => job.jobId),
      );
      assert.deepEqual(
        mixed.slice(30).map((job) => job?.username),
        [undefined, "bob", "bob", undefined],
      );
      // A read asked for after a write was acknowledged sees it; the next turn reads again.
      await store.reportProgress(mine[0]!.jobId, 42);
      const after = await store.getJob(mine[0]!.jobId, "alice");
      assert.equal(after?.progress, 42);
      assert.notEqual(after, same[0]);
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
  });
}

// Sweeps and retention against real databases: stale jobs, cancel grace, expired jobs in bounded chunks.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { sql } from "kysely";
import { NotFoundError } from "../src/errors.js";
import { DIALECTS } from "./helpers/databases.js";
import { dieAfterDeleting, eventRevisions, jobIn, range, setup } from "./helpers/store.js";

for (const dialect of DIALECTS) {
  describe(`store sweeps on ${dialect}`, () => {
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
  });
}

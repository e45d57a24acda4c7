// Statistics against real databases: the figures, and one snapshot while another replica writes.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { DIALECTS } from "./helpers/databases.js";
import { afterEachStatement, jobIn, setup } from "./helpers/store.js";

for (const dialect of DIALECTS) {
  describe(`store statistics on ${dialect}`, () => {
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
  });
}

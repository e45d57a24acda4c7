// Statistics against real databases: the figures, and one snapshot while another replica writes.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Migrator } from "kysely";
import { migrationProvider } from "../src/store/migrations.js";
import { createStore } from "../src/store/open.js";
import { DIALECTS } from "./helpers/databases.js";
import { afterEachStatement, jobIn, setup } from "./helpers/store.js";

/** Asserts that a percentile read from the histogram is within its stated 1% of the exact value. */
function assertWithin(actual: number | null, exact: number, what: string): void {
  assert.ok(actual !== null, `${what}: no value`);
  assert.ok(Math.abs(actual - exact) <= 0.01 * exact, `${what}: ${actual} is not within 1% of ${exact}`);
}

/** A deterministic pseudo-random sequence in [0, 1) (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

for (const dialect of DIALECTS) {
  describe(`store statistics on ${dialect}`, () => {
    test("statistics name at most 100 operation types; the jobs of the rest are summed under (other)", async (t) => {
      const { store } = await setup(t, dialect);
      // 103 types: "big" has 3 jobs, "mid" 2, and 101 types one job each.
      for (let i = 0; i < 3; i++) await store.createJob({ operationType: "big", username: "many" });
      for (let i = 0; i < 2; i++) await store.createJob({ operationType: "mid", username: "many" });
      for (let i = 0; i < 101; i++) {
        await store.createJob({ operationType: `t${String(i).padStart(3, "0")}`, username: "many" });
      }
      const stats = await store.getStatistics("many", 24 * 3600_000);
      assert.equal(Object.keys(stats.byOperationType).length, 101);
      assert.equal(stats.byOperationType.big, 3);
      assert.equal(stats.byOperationType.mid, 2);
      // The 98 one-job types kept are the first by name; the last three are summed.
      assert.equal(stats.byOperationType.t097, 1);
      assert.equal(stats.byOperationType.t098, undefined);
      assert.equal(stats.byOperationType["(other)"], 3);
      assert.equal(stats.total, 106);
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
      // Nearest rank of the ten durations 100, 200, ..., 900, 1000: p50 the 5th, p95 the 10th (ceil(9.5)).
      assert.equal(stats.p50DurationMs, 500);
      assert.equal(stats.p95DurationMs, 1000);
      // Per type only when asked: the rest of the figures the same either way.
      assert.deepEqual(stats.durationsByOperationType, {});
      const typed = await store.getStatistics("stat", 24 * 3600_000, { durationsByOperationType: true });
      assert.deepEqual({ ...typed, durationsByOperationType: {} }, stats);
      // Per type: index's nine 100..900 ms (ranks 5 and ceil(8.55) = 9), remove's one; index_repo finished
      // no job in the window.
      assert.deepEqual(typed.durationsByOperationType, {
        index: { finished: 9, p50DurationMs: 500, p95DurationMs: 900 },
        remove: { finished: 1, p50DurationMs: 1000, p95DurationMs: 1000 },
      });
      assert.equal(old.status, "completed");

      const all = await store.getStatistics(undefined, 24 * 3600_000);
      assert.equal(all.total, 14);
      assert.equal(all.byStatus.cancelled, 1);
      assert.equal(all.finishedInWindow, 11);

      const empty = await store.getStatistics("nobody", 1000, { durationsByOperationType: true });
      assert.deepEqual(empty.byStatus, { pending: 0, running: 0, completed: 0, failed: 0, cancelled: 0 });
      assert.deepEqual(
        [empty.total, empty.finishedInWindow, empty.p50DurationMs, empty.p95DurationMs],
        [0, 0, null, null],
      );
      assert.deepEqual(empty.durationsByOperationType, {});
    });

    for (const [how, statisticsExactMax] of [
      ["exact", undefined],
      ["from the histogram", 0],
    ] as const) {
      test(`durations per operation type (${how}): the 20 types with the most jobs, each its own percentiles`, async (t) => {
        const { store, clock } = await setup(t, dialect, 1, { statisticsExactMax });
        // "big": 3 jobs of 10, 20 and 30 s; "mid": 2 of 1 and 3 s; t000..t020: one of i+1 ms each. By count
        // then name the 20 largest are big, mid and t000..t017: t018, t019 and t020 get none.
        const finish = async (operationType: string, ms: number) => {
          const job = await store.createJob({ operationType, username: "typed" });
          await store.startJob(job.jobId);
          clock.advance(ms);
          await store.completeJob(job.jobId, null);
        };
        for (const ms of [20_000, 10_000, 30_000]) await finish("big", ms);
        for (const ms of [3000, 1000]) await finish("mid", ms);
        for (let i = 0; i <= 20; i++) await finish(`t${String(i).padStart(3, "0")}`, i + 1);
        // Another user's job of type big: not in typed's figures.
        const other = await store.createJob({ operationType: "big", username: "other" });
        await store.startJob(other.jobId);
        clock.advance(99_000);
        await store.completeJob(other.jobId, null);

        const stats = await store.getStatistics("typed", 24 * 3600_000, { durationsByOperationType: true });
        const types = Object.keys(stats.durationsByOperationType).sort();
        assert.deepEqual(types, [
          "big",
          "mid",
          ...Array.from({ length: 18 }, (_, i) => `t${String(i).padStart(3, "0")}`),
        ]);
        const big = stats.durationsByOperationType.big!;
        const mid = stats.durationsByOperationType.mid!;
        const t005 = stats.durationsByOperationType.t005!;
        assert.deepEqual([big.finished, mid.finished, t005.finished], [3, 2, 1]);
        // Nearest rank: of 10, 20, 30 s the 2nd and 3rd; of 1 and 3 s the 1st and 2nd.
        const expected: [number | null, number][] = [
          [big.p50DurationMs, 20_000],
          [big.p95DurationMs, 30_000],
          [mid.p50DurationMs, 1000],
          [mid.p95DurationMs, 3000],
          [t005.p50DurationMs, 6],
          [t005.p95DurationMs, 6],
        ];
        for (const [i, [actual, exact]] of expected.entries()) {
          if (statisticsExactMax === undefined) assert.equal(actual, exact, `figure ${i}`);
          else assertWithin(actual, exact, `figure ${i}`);
        }
        // Every user's: big has 4 jobs, its p95 the other user's 99 s.
        const all = await store.getStatistics(undefined, 24 * 3600_000, { durationsByOperationType: true });
        assert.equal(all.durationsByOperationType.big!.finished, 4);
        // Not asked: none, over the histogram (sketch) as over the exact path.
        const plain = await store.getStatistics(undefined, 24 * 3600_000);
        assert.deepEqual(plain.durationsByOperationType, {});
        assert.deepEqual([plain.p50DurationMs, plain.p95DurationMs], [all.p50DurationMs, all.p95DurationMs]);
        if (statisticsExactMax === undefined) assert.equal(all.durationsByOperationType.big!.p95DurationMs, 99_000);
        else assertWithin(all.durationsByOperationType.big!.p95DurationMs, 99_000, "every user's big p95");
      });
    }

    test("migration 0012 builds the per-type histogram from the finished jobs, and down keeps every type's", async (t) => {
      const { store, clock, url } = await setup(t, dialect);
      for (const [type, ms] of [
        ["a", 100],
        ["a", 300],
        ["b", 5000],
      ] as const) {
        const job = await store.createJob({ operationType: type, username: "m" });
        await store.startJob(job.jobId);
        clock.advance(ms);
        await store.completeJob(job.jobId, null);
      }
      // Two hours on, so the window's jobs are all in whole hours of the histogram.
      clock.advance(2 * 3600_000);
      const sketch = createStore(url, { statisticsExactMax: 0, now: clock.now });
      t.after(() => sketch.close());
      const migrator = new Migrator({ db: store.db, provider: migrationProvider(store.dialect) });
      const figures = async () => {
        const s = await sketch.getStatistics("m", 24 * 3600_000, { durationsByOperationType: true });
        return [s.finishedInWindow, s.p95DurationMs, s.durationsByOperationType.b?.p50DurationMs];
      };
      const before = await figures();
      assert.equal((await migrator.migrateTo("0011_webhooks")).error, undefined);
      const rows = await store.db
        .selectFrom("duration_histogram")
        .select(({ fn }) => fn.sum("n").as("n"))
        .executeTakeFirst();
      // 0011's histogram: the user's and every user's counters of the three jobs.
      assert.equal(Number(rows?.n), 6);
      assert.equal((await migrator.migrateToLatest()).error, undefined);
      assert.deepEqual(await figures(), before);
      assert.equal(before[0], 3);
      assertWithin(before[2] as number, 5000, "b's p50 after the rebuild");
    });

    for (const [how, statisticsExactMax] of [
      ["exact", undefined],
      ["from the histogram", 0],
    ] as const) {
      test(`duration percentiles by nearest rank (${how}), on 1, 2, 3 and 20 jobs against values computed by hand`, async (t) => {
        const { store, clock } = await setup(t, dialect, 1, { statisticsExactMax });
        // Each case: the durations (ms) of one user's jobs, in the order they finish, and [p50, p95].
        const cases: [string, number[], [number, number]][] = [
          // n = 1: both ranks are 1.
          ["one", [700], [700, 700]],
          // n = 2: p50 rank ceil(1) = 1, p95 rank ceil(1.9) = 2 (issue 8: p95 must not be 0.5 s here).
          ["two", [500, 1100], [500, 1100]],
          // n = 3, finishing out of order: sorted 100, 200, 300; ranks ceil(1.5) = 2 and ceil(2.85) = 3.
          ["three", [300, 100, 200], [200, 300]],
          // n = 20: 1..20 s in a shuffled order; ranks ceil(10) = 10 and ceil(19) = 19.
          [
            "twenty",
            [7, 19, 3, 12, 1, 20, 15, 9, 4, 17, 10, 2, 14, 6, 18, 11, 5, 16, 8, 13].map((s) => s * 1000),
            [10_000, 19_000],
          ],
        ];
        for (const [user, durations] of cases) {
          for (const ms of durations) {
            const job = await store.createJob({ operationType: "index", username: user });
            await store.startJob(job.jobId);
            clock.advance(ms);
            await store.completeJob(job.jobId, null);
          }
        }
        for (const [user, durations, [p50, p95]] of cases) {
          const stats = await store.getStatistics(user, 24 * 3600_000);
          assert.equal(stats.finishedInWindow, durations.length, user);
          if (statisticsExactMax === undefined) {
            assert.deepEqual([stats.p50DurationMs, stats.p95DurationMs], [p50, p95], user);
          } else {
            assertWithin(stats.p50DurationMs, p50, `${user} p50`);
            assertWithin(stats.p95DurationMs, p95, `${user} p95`);
          }
        }
      });
    }

    test("a large window's percentiles from the histogram are within 1% of the exact ones, the counts exact, through retention", async (t) => {
      const { store, clock, url } = await setup(t, dialect);
      // The same database through a store that always ranks from the histogram.
      const sketch = createStore(url, { statisticsExactMax: 0, now: clock.now });
      t.after(() => sketch.close());
      // 400 jobs of four users over about 60 hours, durations spread from 3 ms to 2 h (a few never started),
      // finishing at times that do not fall on hours, so windows start inside an hour.
      const next = seeded(7);
      const ids: string[] = [];
      for (let i = 0; i < 400; i++) {
        const job = await store.createJob({ operationType: ["index", "scan", "sync"][i % 3]!, username: `u${i % 4}` });
        clock.advance(Math.floor(next() * 60_000));
        const ms = Math.floor(3 * 2_400_000 ** next());
        if (i % 17 !== 0) await store.startJob(job.jobId);
        clock.advance(ms);
        if (i % 5 === 0) await store.failJob(job.jobId, "x");
        else await store.completeJob(job.jobId, null);
        ids.push(job.jobId);
      }
      const compare = async (when: string) => {
        for (const user of [undefined, "u1"]) {
          for (const windowMs of [90 * 60_000, 7 * 3600_000 + 123_456, 24 * 3600_000, 30 * 24 * 3600_000]) {
            const exact = await store.getStatistics(user, windowMs, { durationsByOperationType: true });
            const approx = await sketch.getStatistics(user, windowMs, { durationsByOperationType: true });
            const what = `${when}, ${user ?? "every user"}, window ${windowMs} ms`;
            assert.ok(exact.finishedInWindow > 0, what);
            assert.equal(approx.finishedInWindow, exact.finishedInWindow, what);
            assert.equal(approx.completedInWindow, exact.completedInWindow, what);
            assertWithin(approx.p50DurationMs, exact.p50DurationMs!, `${what} p50`);
            assertWithin(approx.p95DurationMs, exact.p95DurationMs!, `${what} p95`);
            // Each type's from its own counters, within the same 1%.
            assert.deepEqual(
              Object.keys(approx.durationsByOperationType).sort(),
              Object.keys(exact.durationsByOperationType).sort(),
              what,
            );
            for (const [type, e] of Object.entries(exact.durationsByOperationType)) {
              const a = approx.durationsByOperationType[type]!;
              assert.equal(a.finished, e.finished, `${what} ${type}`);
              assertWithin(a.p50DurationMs, e.p50DurationMs, `${what} ${type} p50`);
              assertWithin(a.p95DurationMs, e.p95DurationMs, `${what} ${type} p95`);
            }
          }
        }
      };
      await compare("as finished");
      // Retention takes the jobs finished more than 20 hours ago: the histogram loses exactly those.
      const removed = await store.deleteExpired(clock.t - 20 * 3600_000, 1000);
      assert.ok(removed > 0 && removed < 400, `retention removed ${removed}`);
      await compare("after retention");
      const all = await sketch.getStatistics(undefined, 30 * 24 * 3600_000);
      assert.equal(all.finishedInWindow, 400 - removed);
    });

    test("counts stay exact through every transition and retention, against a count of the jobs", async (t) => {
      const { store, clock } = await setup(t, dialect);
      const count = async (user: string | undefined) => {
        const rows = await store.db
          .selectFrom("jobs")
          .select(["status", "operation_type"])
          .$if(user !== undefined, (q) => q.where("username", "=", user as string))
          .execute();
        const byStatus: Record<string, number> = { pending: 0, running: 0, completed: 0, failed: 0, cancelled: 0 };
        const byOperationType: Record<string, number> = {};
        for (const r of rows) {
          byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
          byOperationType[r.operation_type] = (byOperationType[r.operation_type] ?? 0) + 1;
        }
        return { byStatus, byOperationType, total: rows.length };
      };
      const check = async (when: string) => {
        // One user's counters, and the every-user counters (their own rows, sharded by job id).
        for (const user of ["counted", undefined]) {
          const stats = await store.getStatistics(user, 24 * 3600_000);
          assert.deepEqual(
            { byStatus: stats.byStatus, byOperationType: stats.byOperationType, total: stats.total },
            await count(user),
            `${when}, ${user ?? "every user"}`,
          );
        }
      };
      const ids: string[] = [];
      for (let i = 0; i < 8; i++) {
        ids.push((await store.createJob({ operationType: i % 2 ? "a" : "b", username: "counted" })).jobId);
      }
      // Another user's jobs, in every user's counts only.
      for (let i = 0; i < 20; i++) await jobIn(store, i % 3 === 0 ? "completed" : "running", "someone-else");
      await check("after creating");
      for (const id of ids.slice(0, 6)) await store.startJob(id);
      await store.reportProgress(ids[0]!, 10);
      await check("after starting");
      // Concurrent transitions of one job: one batch, one status change counted once.
      await Promise.allSettled([
        store.completeJob(ids[0]!, null),
        store.failJob(ids[0]!, "x"),
        store.reportProgress(ids[0]!, 20),
      ]);
      await store.failJob(ids[1]!, "boom");
      await store.cancelJob(ids[2]!);
      await store.markCancelled(ids[2]!);
      await store.cancelJob(ids[6]!);
      await store.completeJob(ids[7]!, null);
      await check("after finishing");
      clock.advance(48 * 3600_000);
      await store.deleteExpired(clock.t - 3600_000, 100);
      await check("after retention");
      assert.equal((await store.getStatistics("counted", 24 * 3600_000)).total, 3);
    });

    test("statistics are one snapshot: another replica writing between its queries cannot make the figures disagree", async (t) => {
      const { stores } = await setup(t, dialect, 2);
      const [a, b] = [stores[0]!, stores[1]!];
      for (let i = 0; i < 3; i++) await jobIn(a, "completed", "stat");
      let armed = true;
      let writes = 0;
      // After each statement of a's getStatistics, replica b creates and completes a job of a new operation.
      afterEachStatement(a.db, async () => {
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

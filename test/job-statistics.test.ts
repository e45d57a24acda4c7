// GetJobStatistics: counts per user or everyone, success rate and durations in the window.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { DIALECTS } from "./helpers/databases.js";
import { expectCode, serverSuite, violation } from "./helpers/rpc.js";

for (const dialect of DIALECTS) {
  describe(`jobwatch server (${dialect})`, () => {
    const suite = serverSuite(dialect);
    const { worker, jobsOf, create } = suite;

    describe("GetJobStatistics", () => {
      // Jobs of bob and of someone else, so that "everyone's" counts more than bob's own.
      before(async () => {
        await create("bob");
        await create("alice");
      });

      test("a user counts their own jobs; an admin everyone's or one user's", async () => {
        const mine = await jobsOf(suite.server.tokens.bob).getJobStatistics({});
        const bobsJobs = await jobsOf(suite.server.tokens.admin).getJobStatistics({ username: "bob" });
        assert.equal(mine.total, bobsJobs.total);
        assert.equal(mine.total, mine.pending + mine.running + mine.completed + mine.failed + mine.cancelled);
        assert.equal(mine.active, mine.running);
        const all = await jobsOf(suite.server.tokens.admin).getJobStatistics({ allUsers: true });
        assert.ok(all.total > mine.total);
        const denied = await expectCode(
          jobsOf(suite.server.tokens.alice).getJobStatistics({ username: "bob" }),
          grpc.status.PERMISSION_DENIED,
        );
        assert.match(denied.details, /manage_jobs/);
        const window = await expectCode(
          jobsOf(suite.server.tokens.alice).getJobStatistics({ window: { seconds: 0, nanos: 0 } }),
          grpc.status.INVALID_ARGUMENT,
        );
        violation(window, "window");
        for (const seconds of [315_576_001, 2 ** 52]) {
          const tooLong = await expectCode(
            jobsOf(suite.server.tokens.alice).getJobStatistics({ window: { seconds, nanos: 0 } }),
            grpc.status.INVALID_ARGUMENT,
          );
          assert.match(violation(tooLong, "window"), new RegExp(`at most 315576000s \\(10 years\\); got ${seconds}s`));
        }
        const tenYears = await jobsOf(suite.server.tokens.alice).getJobStatistics({
          window: { seconds: 315_576_000, nanos: 0 },
        });
        assert.ok(tenYears.windowStart!.getTime() <= Date.now() - 315_576_000_000);
      });

      test("finished jobs in the window give a success rate and durations", async () => {
        const op = `stats_${randomUUID().slice(0, 8)}`;
        const a = await create("carol", op);
        await worker().startJob({ jobId: a.jobId });
        await worker().completeJob({ jobId: a.jobId });
        const b = await create("carol", op);
        await worker().failJob({ jobId: b.jobId, error: "no" });
        const stats = await jobsOf(suite.server.tokens.admin).getJobStatistics({
          username: "carol",
          includeDurationsByOperationType: true,
        });
        assert.equal(stats.finishedInWindow, 2);
        assert.equal(stats.successRate, 0.5);
        assert.equal(stats.byOperationType[op], 2);
        assert.ok(stats.p50Duration !== undefined && stats.p95Duration !== undefined);
        assert.ok(stats.windowStart instanceof Date);
        // All of carol's finished jobs are of op: its durations are the window's.
        assert.deepEqual(stats.durationsByOperationType, {
          [op]: { finished: 2, p50Duration: stats.p50Duration, p95Duration: stats.p95Duration },
        });
        const bobs = await jobsOf(suite.server.tokens.bob).getJobStatistics({ includeDurationsByOperationType: true });
        assert.equal(bobs.durationsByOperationType[op], undefined);
        // Without include_durations_by_operation_type: no per-type figures, the overall ones the same.
        const plain = await jobsOf(suite.server.tokens.admin).getJobStatistics({ username: "carol" });
        assert.deepEqual(plain.durationsByOperationType, {});
        assert.deepEqual(
          [plain.finishedInWindow, plain.successRate, plain.p50Duration, plain.p95Duration],
          [2, 0.5, stats.p50Duration, stats.p95Duration],
        );
      });
    });
  });
}

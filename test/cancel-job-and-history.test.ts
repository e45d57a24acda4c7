// CancelJob (PENDING, RUNNING, finished, someone else's) and GetJobHistory.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import type { Job } from "../src/gen/jobwatch/v1/job.js";
import { DIALECTS } from "./helpers/databases.js";
import {
  CANCELLED,
  expectCode,
  FAILED,
  notFound,
  PENDING,
  RUNNING,
  serverSuite,
  transitions,
  violation,
} from "./helpers/rpc.js";

for (const dialect of DIALECTS) {
  describe(`jobwatch server (${dialect})`, () => {
    const suite = serverSuite(dialect);
    const { worker, jobsOf, create } = suite;

    describe("CancelJob and history", () => {
      test("a PENDING job is cancelled at once; cancelling again is OK; a finished one is FAILED_PRECONDITION", async () => {
        const job = await create("alice");
        const { job: cancelled } = await jobsOf(suite.server.tokens.alice).cancelJob({
          jobId: job.jobId,
          reason: "not needed",
        });
        assert.equal(cancelled?.status, CANCELLED);
        assert.ok(cancelled?.completedAt instanceof Date);
        const { job: again } = await jobsOf(suite.server.tokens.alice).cancelJob({ jobId: job.jobId });
        assert.equal(again?.revision, cancelled?.revision);

        const done = await create("alice");
        await worker().completeJob({ jobId: done.jobId });
        const error = await expectCode(
          jobsOf(suite.server.tokens.alice).cancelJob({ jobId: done.jobId }),
          grpc.status.FAILED_PRECONDITION,
        );
        assert.match(error.details, /cannot cancel a job in COMPLETED status/);
      });

      test("a RUNNING job gets cancel_requested, the worker and a watcher see it, and the worker confirms", async () => {
        const job = await create("alice");
        await worker().startJob({ jobId: job.jobId });
        const watch = suite.server.watch(suite.server.tokens.alice, { jobId: job.jobId });
        await watch.received(1);
        const { job: requested } = await jobsOf(suite.server.tokens.alice).cancelJob({
          jobId: job.jobId,
          reason: "wrong repo",
        });
        assert.equal(requested?.status, RUNNING);
        assert.equal(requested?.cancelRequested, true);
        assert.equal(requested?.cancelReason, "wrong repo");
        const { job: reported } = await worker().reportProgress({ jobId: job.jobId, progress: 30 });
        assert.equal(reported?.cancelRequested, true);
        await worker().markCancelled({ jobId: job.jobId });
        const end = await watch.done;
        assert.equal(grpc.status[end.code], "OK");
        assert.deepEqual(
          watch.jobs
            .map((j) => [j.status, j.cancelRequested])
            .filter((x, i, all) => i === 0 || JSON.stringify(x) !== JSON.stringify(all[i - 1])),
          [
            [RUNNING, false],
            [RUNNING, true],
            [CANCELLED, true],
          ],
        );
      });

      test("cancel of another user's job is NOT_FOUND; an admin may cancel it; a long reason is INVALID_ARGUMENT", async () => {
        const bobs = await create("bob");
        const error = await expectCode(
          jobsOf(suite.server.tokens.alice).cancelJob({ jobId: bobs.jobId }),
          grpc.status.NOT_FOUND,
        );
        assert.equal(error.details, notFound(bobs.jobId));
        const reason = await expectCode(
          jobsOf(suite.server.tokens.bob).cancelJob({ jobId: bobs.jobId, reason: "r".repeat(1001) }),
          grpc.status.INVALID_ARGUMENT,
        );
        violation(reason, "reason");
        const { job } = await jobsOf(suite.server.tokens.admin).cancelJob({ jobId: bobs.jobId });
        assert.equal(job?.status, CANCELLED);
      });

      test("history lists every status change in order, for the owner only", async () => {
        const job = await create("alice");
        await worker().startJob({ jobId: job.jobId });
        await worker().reportProgress({ jobId: job.jobId, progress: 50, phase: "fts" });
        await worker().failJob({ jobId: job.jobId, error: "index corrupt" });
        const { events } = await jobsOf(suite.server.tokens.alice).getJobHistory({ jobId: job.jobId });
        assert.deepEqual(transitions(events as unknown as Job[]), [PENDING, RUNNING, FAILED]);
        const last = events[events.length - 1]!;
        assert.equal(last.error, "index corrupt");
        for (let i = 1; i < events.length; i++) assert.ok(events[i]!.revision > events[i - 1]!.revision);
        const error = await expectCode(
          jobsOf(suite.server.tokens.bob).getJobHistory({ jobId: job.jobId }),
          grpc.status.NOT_FOUND,
        );
        assert.equal(error.details, notFound(job.jobId));
        violation(
          await expectCode(jobsOf(suite.server.tokens.bob).getJobHistory({ jobId: "x" }), grpc.status.INVALID_ARGUMENT),
          "job_id",
        );
      });
    });
  });
}

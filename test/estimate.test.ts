// The completion estimate as clients see it, over a real server on each dialect, with a clock the test moves.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import type { Job } from "../src/gen/jobwatch/v1/job.js";
import { EstimateBasis, JobStatus } from "../src/gen/jobwatch/v1/job.js";
import type { WatchJobsResponse } from "../src/gen/jobwatch/v1/job_service.js";
import { WatchJobsRequest } from "../src/gen/jobwatch/v1/job_service.js";
import { DIALECTS } from "./helpers/databases.js";
import { startTestServer } from "./helpers/server.js";

const S = 1000;

for (const dialect of DIALECTS) {
  describe(`completion estimate on ${dialect}`, () => {
    test("from history while PENDING and at 0%, from the rate as it runs, moving out when it stalls, none when done", async (t) => {
      const clock = { t: Date.UTC(2031, 0, 1) };
      const server = await startTestServer({ dialect, now: () => clock.t });
      t.after(() => server.stop());
      const { worker } = server.as(server.tokens.worker);
      const { jobs } = server.as(server.tokens.alice);
      const create = async (operationType: string): Promise<Job> =>
        (await worker.createJob({ operationType, username: "alice" })).job!;
      const details = async (jobId: string): Promise<Job> => (await jobs.getJobDetails({ jobId })).job!;
      const none = (job: Job, what: string): void => {
        assert.equal(job.estimatedCompletionAt, undefined, `${what}: no estimate`);
        assert.equal(job.estimateBasis, EstimateBasis.ESTIMATE_BASIS_UNSPECIFIED, `${what}: no basis`);
      };

      // A new operation type: nothing to go on, PENDING or RUNNING at 0%.
      const fresh = await create("brand_new");
      none(fresh, "CreateJob of a new type");
      await worker.startJob({ jobId: fresh.jobId });
      none(await details(fresh.jobId), "a new type at 0%");

      // History: index_repo jobs wait 2 s and run 60 s. Two are not enough.
      for (let i = 1; i <= 3; i++) {
        const job = await create("index_repo");
        if (i === 3) none(job, "a PENDING job of a type with 2 finished runs");
        clock.t += 2 * S;
        await worker.startJob({ jobId: job.jobId });
        clock.t += 60 * S;
        // Read just before it completes: the server has just read the type's history (two runs).
        none(await details(job.jobId), "a type with 2 finished runs at 0%");
        const done = (await worker.completeJob({ jobId: job.jobId })).job!;
        none(done, "a COMPLETED job");
      }
      // No wait for the next refresh: a completion this server recorded makes it read the history again.

      const job = await create("index_repo");
      const created = job.createdAt!.getTime();
      assert.equal(job.estimateBasis, EstimateBasis.ESTIMATE_BASIS_HISTORY);
      assert.equal(
        job.estimatedCompletionAt?.getTime(),
        created + 2 * S + 60 * S,
        "created + median wait + median run",
      );
      assert.deepEqual((await details(job.jobId)).estimatedCompletionAt, job.estimatedCompletionAt);

      clock.t += 2 * S;
      const started = (await worker.startJob({ jobId: job.jobId })).job!;
      const startedAt = started.startedAt!.getTime();
      assert.equal(started.estimateBasis, EstimateBasis.ESTIMATE_BASIS_HISTORY);
      assert.equal(started.estimatedCompletionAt?.getTime(), startedAt + 60 * S, "started + median run");

      // This one runs at 1% a second: it will end at started + 100 s, slower than its history.
      const trueEnd = startedAt + 100 * S;
      let seen: Job | undefined;
      for (let progress = 5; progress <= 50; progress += 5) {
        clock.t = startedAt + progress * S;
        const reply = (await worker.reportProgress({ jobId: job.jobId, progress })).job!;
        seen = await details(job.jobId);
        assert.deepEqual(seen.estimatedCompletionAt, reply.estimatedCompletionAt, "the reply carries it too");
        assert.ok(seen.estimatedCompletionAt!.getTime() > clock.t, "never in the past");
        assert.equal(
          seen.estimateBasis,
          progress < 30
            ? EstimateBasis.ESTIMATE_BASIS_PROGRESS_AND_HISTORY
            : EstimateBasis.ESTIMATE_BASIS_PROGRESS_RATE,
          `basis at ${progress}%`,
        );
        if (progress >= 30) {
          const error = Math.abs(seen.estimatedCompletionAt!.getTime() - trueEnd);
          assert.ok(error <= 10 * S, `at ${progress}%: off by ${error} ms, over 10% of 100 s`);
        }
      }

      // ListJobs, WatchJobs and WatchJob carry the same estimate.
      const listed = (await jobs.listJobs({ operationType: "index_repo" })).jobs.find((j) => j.jobId === job.jobId);
      assert.deepEqual(listed?.estimatedCompletionAt, seen?.estimatedCompletionAt);
      const md = new grpc.Metadata();
      md.set("authorization", `Bearer ${server.tokens.alice}`);
      const many = server.jobClient.watchJobs(WatchJobsRequest.fromPartial({ operationType: "index_repo" }), md);
      const snapshot = await new Promise<WatchJobsResponse>((resolve) => many.once("data", resolve));
      many.cancel();
      many.on("error", () => undefined);
      const inSnapshot = snapshot.jobs.find((j) => j.jobId === job.jobId);
      assert.deepEqual(inSnapshot?.estimatedCompletionAt, seen?.estimatedCompletionAt);
      assert.equal(inSnapshot?.estimateBasis, EstimateBasis.ESTIMATE_BASIS_PROGRESS_RATE);
      const watch = server.watch(server.tokens.alice, { jobId: job.jobId });
      await watch.received(1);
      assert.equal(watch.jobs[0]?.estimateBasis, EstimateBasis.ESTIMATE_BASIS_PROGRESS_RATE);
      assert.ok(watch.jobs[0]?.estimatedCompletionAt !== undefined);

      // It stalls at 50%: each reading puts the end later, the worker's heartbeats notwithstanding.
      let previous = seen!.estimatedCompletionAt!.getTime();
      for (let i = 1; i <= 4; i++) {
        clock.t += 30 * S;
        await worker.heartbeat({ jobId: job.jobId });
        const at = (await details(job.jobId)).estimatedCompletionAt!.getTime();
        assert.ok(at > previous + 30 * S, `after ${30 * i} s of stall: ${at - previous} ms later only`);
        previous = at;
      }
      // The job unchanged and polled (nothing written between the reads): the end still moves out.
      for (let i = 1; i <= 2; i++) {
        clock.t += 30 * S;
        const at = (await details(job.jobId)).estimatedCompletionAt!.getTime();
        assert.ok(at > previous + 30 * S, `an unchanged job polled ${30 * i} s later: ${at - previous} ms later only`);
        previous = at;
      }
      await watch.received(5);
      assert.ok(watch.jobs[4]!.estimatedCompletionAt!.getTime() > seen!.estimatedCompletionAt!.getTime() + 90 * S);
      watch.cancel();

      const done = (await worker.completeJob({ jobId: job.jobId })).job!;
      assert.equal(done.status, JobStatus.JOB_STATUS_COMPLETED);
      none(done, "CompleteJob's reply");
      none(await details(job.jobId), "a COMPLETED job");
    });

    test("the rate is over the last minutes: a job that speeds up is followed, across a restart of the server", async (t) => {
      const clock = { t: Date.UTC(2031, 0, 1) };
      const first = await startTestServer({ dialect, now: () => clock.t });
      t.after(() => first.stop());
      const { worker } = first.as(first.tokens.worker);
      const job = (await worker.createJob({ operationType: "reindex", username: "alice" })).job!;
      const startedAt = clock.t;
      await worker.startJob({ jobId: job.jobId });
      // 1% every 10 s for 5 minutes (30%), then 1% every 4 s; reported every 2 s.
      const progressAt = (ms: number): number =>
        Math.floor(ms <= 300 * S ? ms / (10 * S) : 30 + (ms - 300 * S) / (4 * S));
      for (let ms = 2 * S; ms <= 300 * S + 250 * S; ms += 2 * S) {
        clock.t = startedAt + ms;
        await worker.reportProgress({ jobId: job.jobId, progress: progressAt(ms) });
      }
      // A second server on the same database reads the anchor from the row: nothing is kept in memory.
      const second = await startTestServer({ sharing: first, now: () => clock.t });
      t.after(() => second.stop());
      const seen = (await second.as(second.tokens.alice).jobs.getJobDetails({ jobId: job.jobId })).job!;
      assert.equal(seen.progress, 92);
      const trueEnd = startedAt + 300 * S + 70 * 4 * S;
      const error = Math.abs(seen.estimatedCompletionAt!.getTime() - trueEnd);
      // Measured since the start, the rate would be 92% in 550 s and the end 18 s late. (The anchor still
      // remembers a little of the slow start: it forgets half of what lies before it every two minutes.)
      assert.ok(error <= 10 * S, `off by ${error} ms`);
    });
  });
}

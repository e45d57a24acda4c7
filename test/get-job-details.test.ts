// GetJobDetails: invalid ids, NOT_FOUND for missing and other users' jobs, every field of a new job.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { DIALECTS } from "./helpers/databases.js";
import { expectCode, notFound, PENDING, RUNNING, serverSuite, violation } from "./helpers/rpc.js";
import { startTestServer } from "./helpers/server.js";

for (const dialect of DIALECTS) {
  describe(`jobwatch server (${dialect})`, () => {
    const suite = serverSuite(dialect);
    const { jobsOf, create } = suite;

    describe("GetJobDetails", () => {
      test("a job_id that is not a UUID is INVALID_ARGUMENT with a job_id field violation", async () => {
        for (const jobId of ["", "42", "3f0e2c1a-9b7d-4c2e-8f1a", "zzzzzzzz-9b7d-4c2e-8f1a-2b3c4d5e6f70"]) {
          const error = await expectCode(
            jobsOf(suite.server.tokens.alice).getJobDetails({ jobId }),
            grpc.status.INVALID_ARGUMENT,
          );
          assert.match(violation(error, "job_id"), /must be a UUID like .*; got '/);
        }
      });

      test("an unknown job is NOT_FOUND saying it may have expired", async () => {
        const jobId = randomUUID();
        const error = await expectCode(
          jobsOf(suite.server.tokens.alice).getJobDetails({ jobId }),
          grpc.status.NOT_FOUND,
        );
        assert.equal(error.details, notFound(jobId));
      });

      test("another user's job answers exactly like a missing one; manage_jobs sees it", async () => {
        const bobs = await create("bob");
        const other = await expectCode(
          jobsOf(suite.server.tokens.alice).getJobDetails({ jobId: bobs.jobId }),
          grpc.status.NOT_FOUND,
        );
        assert.equal(other.details, notFound(bobs.jobId));
        // The same id with a never-used suffix: the message differs only by the id.
        const missingId = randomUUID();
        const missing = await expectCode(
          jobsOf(suite.server.tokens.alice).getJobDetails({ jobId: missingId }),
          grpc.status.NOT_FOUND,
        );
        assert.equal(missing.details.replace(missingId, "ID"), other.details.replace(bobs.jobId, "ID"));
        assert.deepEqual(
          missing.metadata.get("grpc-status-details-bin").length,
          other.metadata.get("grpc-status-details-bin").length,
        );

        const { job } = await jobsOf(suite.server.tokens.bob).getJobDetails({ jobId: bobs.jobId });
        assert.equal(job?.username, "bob");
        const { job: asAdmin } = await jobsOf(suite.server.tokens.admin).getJobDetails({ jobId: bobs.jobId });
        assert.equal(asAdmin?.jobId, bobs.jobId);
      });

      test("a write through another server on the same database is in the next read", async (t) => {
        const job = await create("alice");
        const read = async (server: typeof suite.server) =>
          (await server.as(server.tokens.alice).jobs.getJobDetails({ jobId: job.jobId })).job!;
        assert.equal((await read(suite.server)).progress, 0);
        const other = await startTestServer({ sharing: suite.server });
        t.after(() => other.stop());
        const worker = other.as(other.tokens.worker).worker;
        await worker.startJob({ jobId: job.jobId });
        for (const progress of [10, 20]) {
          await worker.reportProgress({ jobId: job.jobId, progress });
          const seen = await read(suite.server);
          assert.deepEqual([seen.status, seen.progress], [RUNNING, progress]);
        }
      });

      test("an upper-case UUID finds the job (ids are case-insensitive)", async () => {
        const job = await create("alice");
        const { job: found } = await jobsOf(suite.server.tokens.alice).getJobDetails({
          jobId: job.jobId.toUpperCase(),
        });
        assert.equal(found?.jobId, job.jobId);
      });

      test("a new job has every field of the seed's get_job_details", async () => {
        const created = await create("alice", "refresh_golden_repo");
        const { job } = await jobsOf(suite.server.tokens.alice).getJobDetails({ jobId: created.jobId });
        assert.ok(job);
        assert.match(job.jobId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        assert.equal(job.operationType, "refresh_golden_repo");
        assert.equal(job.status, PENDING);
        assert.ok(job.createdAt instanceof Date);
        assert.equal(job.startedAt, undefined);
        assert.equal(job.completedAt, undefined);
        assert.equal(job.progress, 0);
        assert.equal(job.result, undefined);
        assert.equal(job.error, undefined);
        assert.equal(job.username, "alice");
        assert.equal(job.revision, 1);
      });
      test("a finished job: COMPLETED shows 100% and no phase or detail; FAILED and CANCELLED keep where they stopped", async () => {
        const worker = suite.worker();
        const read = async (jobId: string) => (await jobsOf(suite.server.tokens.alice).getJobDetails({ jobId })).job!;
        const ended: Record<string, string> = {};
        for (const outcome of ["completed", "failed", "cancelled"] as const) {
          const job = await create("alice", `finished_${outcome}`);
          await worker.startJob({ jobId: job.jobId });
          await worker.reportProgress({
            jobId: job.jobId,
            progress: 40,
            phase: "semantic",
            detail: "200/500 files indexed",
          });
          if (outcome === "completed") await worker.completeJob({ jobId: job.jobId });
          if (outcome === "failed") await worker.failJob({ jobId: job.jobId, error: "disk full" });
          if (outcome === "cancelled") {
            await jobsOf(suite.server.tokens.alice).cancelJob({ jobId: job.jobId });
            await worker.markCancelled({ jobId: job.jobId });
          }
          ended[outcome] = job.jobId;
        }
        const completed = await read(ended["completed"]!);
        assert.deepEqual([completed.progress, completed.phase, completed.detail], [100, undefined, undefined]);
        for (const outcome of ["failed", "cancelled"]) {
          const job = await read(ended[outcome]!);
          assert.deepEqual([job.progress, job.phase, job.detail], [40, "semantic", "200/500 files indexed"], outcome);
        }
        // The history keeps the phases of the revisions before the end.
        const { events } = await jobsOf(suite.server.tokens.alice).getJobHistory({ jobId: ended["completed"]! });
        assert.deepEqual(
          events.map((e) => e.phase),
          [undefined, undefined, "semantic", undefined],
          "created, started, the progress report, completed",
        );
      });
    });
  });
}

// JobWorkerService: CreateJob's validation and request_id, ALREADY_EXISTS, the lifecycle's illegal transitions and races.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";
import type { ServiceError } from "@grpc/grpc-js";
import * as grpc from "@grpc/grpc-js";
import { DIALECTS } from "./helpers/databases.js";
import { COMPLETED, expectCode, FAILED, notFound, serverSuite, violation } from "./helpers/rpc.js";
import { errorInfoOf, preconditionFailureOf } from "./helpers/server.js";

for (const dialect of DIALECTS) {
  describe(`jobwatch server (${dialect})`, () => {
    const suite = serverSuite(dialect);
    const { worker, jobsOf, create } = suite;

    describe("JobWorkerService", () => {
      test("CreateJob names every invalid field and what to fix", async () => {
        const both = await expectCode(
          worker().createJob({ operationType: "", username: "" }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(both, "operation_type"), /is required/);
        assert.match(violation(both, "username"), /is required/);

        const chars = await expectCode(
          worker().createJob({ operationType: "add golden/repo", username: "alice" }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(chars, "operation_type"), /letters, digits/);
        const long = await expectCode(
          worker().createJob({ operationType: "a".repeat(101), username: "alice" }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(long, "operation_type"), /at most 100 characters; got 101/);
        const userLong = await expectCode(
          worker().createJob({ operationType: "x", username: "u".repeat(201) }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(userLong, "username"), /at most 200/);
        const control = await expectCode(
          worker().createJob({ operationType: "x", username: "al\nice" }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(control, "username"), /control characters/);
        const requestId = await expectCode(
          worker().createJob({ operationType: "x", username: "alice", requestId: "retry-1" }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(requestId, "request_id"), /UUID/);
        const resource = await expectCode(
          worker().createJob({ operationType: "x", username: "alice", resource: "r".repeat(201) }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(resource, "resource"), /at most 200/);
      });

      test("CreateJob with the same request_id returns the first job", async () => {
        const requestId = randomUUID();
        const first = await worker().createJob({ operationType: "add_golden_repo", username: "alice", requestId });
        const again = await worker().createJob({ operationType: "add_golden_repo", username: "alice", requestId });
        assert.equal(again.job?.jobId, first.job?.jobId);
        assert.equal(again.job?.revision, 1);
        // The same request_id with other fields is a client bug, not a retry: it must not hand back the job.
        const error = await expectCode(
          worker().createJob({ operationType: "add_golden_repo", username: "bob", requestId }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(
          violation(error, "request_id"),
          /already used to create another job with other fields; use a new UUID/,
        );
        // The job belongs to whoever made it first: its id is not for this caller to learn.
        assert.ok(!error.details.includes(first.job!.jobId), error.details);
      });

      test("a second active job for the same resource is ALREADY_EXISTS naming the active job", async () => {
        const resource = `repo-${randomUUID()}`;
        const active = await create("alice", "refresh_golden_repo", resource);
        const error = await expectCode(
          worker().createJob({ operationType: "refresh_golden_repo", username: "bob", resource }),
          grpc.status.ALREADY_EXISTS,
        );
        const info = errorInfoOf(error);
        assert.equal(info?.domain, "jobwatch.v1");
        assert.equal(info?.metadata.job_id, active.jobId);
        // Another operation on the same resource is fine, and so is the same one once the first finished.
        await create("alice", "remove_golden_repo", resource);
        await worker().failJob({ jobId: active.jobId, error: "gave up" });
        await create("alice", "refresh_golden_repo", resource);
      });

      test("illegal transitions are FAILED_PRECONDITION naming the current status", async () => {
        const job = await create("alice");
        const early = await expectCode(
          worker().reportProgress({ jobId: job.jobId, progress: 10 }),
          grpc.status.FAILED_PRECONDITION,
        );
        assert.match(early.details, /PENDING/);
        const pf = preconditionFailureOf(early);
        assert.equal(pf?.violations[0]?.type, "STATUS");
        assert.equal(pf?.violations[0]?.subject, job.jobId);
        await expectCode(worker().heartbeat({ jobId: job.jobId }), grpc.status.FAILED_PRECONDITION);
        await expectCode(worker().markCancelled({ jobId: job.jobId }), grpc.status.FAILED_PRECONDITION);

        await worker().startJob({ jobId: job.jobId });
        const twice = await expectCode(worker().startJob({ jobId: job.jobId }), grpc.status.FAILED_PRECONDITION);
        assert.match(twice.details, /RUNNING/);
        await worker().completeJob({ jobId: job.jobId });
        const again = await expectCode(worker().completeJob({ jobId: job.jobId }), grpc.status.FAILED_PRECONDITION);
        assert.match(again.details, /COMPLETED/);
        const late = await expectCode(
          worker().reportProgress({ jobId: job.jobId, progress: 10 }),
          grpc.status.FAILED_PRECONDITION,
        );
        assert.match(late.details, /COMPLETED/);
        await expectCode(worker().failJob({ jobId: job.jobId, error: "x" }), grpc.status.FAILED_PRECONDITION);
      });

      test("out-of-range reports are INVALID_ARGUMENT with the field", async () => {
        const job = await create("alice");
        await worker().startJob({ jobId: job.jobId });
        for (const progress of [-1, 101]) {
          const error = await expectCode(
            worker().reportProgress({ jobId: job.jobId, progress }),
            grpc.status.INVALID_ARGUMENT,
          );
          assert.match(violation(error, "progress"), new RegExp(`0 to 100; got ${progress}`));
        }
        const phase = await expectCode(
          worker().reportProgress({ jobId: job.jobId, progress: 1, phase: "p".repeat(101) }),
          grpc.status.INVALID_ARGUMENT,
        );
        violation(phase, "phase");
        const detail = await expectCode(
          worker().reportProgress({ jobId: job.jobId, progress: 1, detail: "d".repeat(1001) }),
          grpc.status.INVALID_ARGUMENT,
        );
        violation(detail, "detail");
        const empty = await expectCode(worker().failJob({ jobId: job.jobId, error: "" }), grpc.status.INVALID_ARGUMENT);
        assert.match(violation(empty, "error"), /is required/);
        const longError = await expectCode(
          worker().failJob({ jobId: job.jobId, error: "e".repeat(16385) }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(longError, "error"), /at most 16384/);
        const big = await expectCode(
          worker().completeJob({ jobId: job.jobId, result: { blob: "x".repeat(70_000) } }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(big, "result"), /65536 bytes/);
        const badId = await expectCode(worker().startJob({ jobId: "job-1" }), grpc.status.INVALID_ARGUMENT);
        violation(badId, "job_id");
        // None of these changed the job.
        const { job: now } = await jobsOf(suite.server.tokens.alice).getJobDetails({ jobId: job.jobId });
        assert.equal(now?.revision, 2);
      });

      test("a transition on an unknown job is NOT_FOUND", async () => {
        const jobId = randomUUID();
        const error = await expectCode(worker().startJob({ jobId }), grpc.status.NOT_FOUND);
        assert.equal(error.details, notFound(jobId));
      });

      test("of CompleteJob and FailJob racing on one job, exactly one wins", async () => {
        for (let i = 0; i < 5; i++) {
          const job = await create("alice");
          await worker().startJob({ jobId: job.jobId });
          const outcomes = await Promise.allSettled([
            worker().completeJob({ jobId: job.jobId, result: { n: i } }),
            worker().failJob({ jobId: job.jobId, error: "boom" }),
          ]);
          const won = outcomes.filter((o) => o.status === "fulfilled");
          const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === "rejected");
          assert.equal(won.length, 1);
          assert.equal(lost.length, 1);
          assert.equal(grpc.status[(lost[0]!.reason as ServiceError).code], "FAILED_PRECONDITION");
          const { job: final } = await jobsOf(suite.server.tokens.alice).getJobDetails({ jobId: job.jobId });
          assert.equal(final?.revision, 3);
          assert.ok(final?.status === COMPLETED || final?.status === FAILED);
        }
      });
    });
  });
}

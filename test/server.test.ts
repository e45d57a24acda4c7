// The server as a client sees it, on every dialect: status codes and their details, who sees what,
// the job lifecycle through the worker API, WatchJob (in order, across replicas, slow readers, shutdown),
// ListJobs, statistics, cancellation, history and health.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import * as grpc from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import pino from "pino";
import { Timestamp } from "../src/gen/google/protobuf/timestamp.js";
import { ListJobsResponse } from "../src/gen/jobwatch/v1/job_service.js";
import { JobStatus } from "../src/gen/jobwatch/v1/job.js";
import type { Job } from "../src/gen/jobwatch/v1/job.js";
import { NotFoundError, UnavailableError } from "../src/errors.js";
import { INTERNAL_MESSAGE, errorToStatus } from "../src/server/error-status.js";
import { createServer } from "../src/server/server.js";
import { Sweeper } from "../src/server/sweeper.js";
import { WatchHub } from "../src/watch/watch-hub.js";
import type { JobStore } from "../src/store/store.js";
import { DIALECTS } from "./helpers/databases.js";
import { errorInfoOf, failure, fieldViolationsOf, preconditionFailureOf, startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";

const { PENDING, RUNNING, COMPLETED, FAILED, CANCELLED } = {
  PENDING: JobStatus.JOB_STATUS_PENDING,
  RUNNING: JobStatus.JOB_STATUS_RUNNING,
  COMPLETED: JobStatus.JOB_STATUS_COMPLETED,
  FAILED: JobStatus.JOB_STATUS_FAILED,
  CANCELLED: JobStatus.JOB_STATUS_CANCELLED,
};

const quiet = pino({ level: "silent" });

/** The NOT_FOUND message of a job id, whether missing or someone else's. */
const notFound = (jobId: string): string =>
  `job ${jobId} not found (finished jobs are removed after the retention period)`;

/** Asserts a failed call's code (by name, so a mismatch reads well) and returns the error. */
async function expectCode(call: Promise<unknown>, code: grpc.status): Promise<ServiceError> {
  const error = await failure(call);
  assert.equal(grpc.status[error.code], grpc.status[code], `details: ${error.details}`);
  return error;
}

/** Asserts exactly one BadRequest field violation for `field` and returns its description. */
function violation(error: ServiceError, field: string): string {
  const violations = fieldViolationsOf(error);
  const found = violations.filter((v) => v.field === field);
  assert.equal(found.length, 1, `expected a violation for ${field}, got ${JSON.stringify(violations)}`);
  return found[0]!.description;
}

/** Statuses in the order seen, consecutive repeats collapsed. */
function transitions(jobs: Job[]): JobStatus[] {
  const out: JobStatus[] = [];
  for (const job of jobs) if (out[out.length - 1] !== job.status) out.push(job.status);
  return out;
}

/** Revisions strictly increase. */
function assertInRevisionOrder(jobs: Job[]): void {
  for (let i = 1; i < jobs.length; i++) {
    assert.ok(
      jobs[i]!.revision > jobs[i - 1]!.revision,
      `revision ${jobs[i]!.revision} after ${jobs[i - 1]!.revision}`,
    );
  }
}

/**
 * ListJobs with created_after / created_before given as raw Timestamp seconds: what a client in another
 * language may send, and beyond what a JavaScript Date (and so the generated client) can hold.
 */
function listJobsBySeconds(
  server: TestServer,
  token: string,
  seconds: { after?: number; before?: number },
): Promise<ListJobsResponse> {
  const writer = new BinaryWriter();
  if (seconds.after !== undefined)
    Timestamp.encode({ seconds: seconds.after, nanos: 0 }, writer.uint32(26).fork()).join();
  if (seconds.before !== undefined)
    Timestamp.encode({ seconds: seconds.before, nanos: 0 }, writer.uint32(34).fork()).join();
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return new Promise((resolve, reject) => {
    server.jobClient.makeUnaryRequest(
      "/jobwatch.v1.JobService/ListJobs",
      (body: Buffer) => body,
      (bytes: Buffer) => ListJobsResponse.decode(bytes),
      Buffer.from(writer.finish()),
      metadata,
      (error, response) => (error ? reject(error) : resolve(response!)),
    );
  });
}

/** A client of grpc.health.v1.Health (grpc-health-check's proto-loader definition). */
const HealthClient = grpc.makeGenericClientConstructor(healthService, "grpc.health.v1.Health") as unknown as new (
  address: string,
  credentials: grpc.ChannelCredentials,
) => grpc.Client & {
  check(
    request: { service: string },
    callback: (error: ServiceError | null, response: { status: ServingStatus }) => void,
  ): void;
  watch(request: { service: string }): grpc.ClientReadableStream<{ status: ServingStatus }>;
};
type ServingStatus = "SERVING" | "NOT_SERVING" | "UNKNOWN" | "SERVICE_UNKNOWN";

function healthCheck(address: string, service: string): Promise<ServingStatus> {
  const client = new HealthClient(address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.check({ service }, (error: ServiceError | null, response: { status: ServingStatus }) => {
      client.close();
      if (error) reject(error);
      else resolve(response.status);
    });
  });
}

describe("errorToStatus", () => {
  const log = quiet;

  test("an unexpected error is INTERNAL with a fixed message: no stack or detail reaches the client", () => {
    const status = errorToStatus(
      new TypeError("cannot read properties of undefined (reading 'x') at /srv/secret.ts:1"),
      log,
    );
    assert.equal(grpc.status[status.code], "INTERNAL");
    assert.equal(status.details, INTERNAL_MESSAGE);
    assert.deepEqual(status.metadata.getMap(), {});
    assert.equal(grpc.status[errorToStatus("a string", log).code], "INTERNAL");
  });

  test("an abort is CANCELLED; domain errors keep their code", () => {
    const aborted = new AbortController();
    aborted.abort();
    assert.equal(grpc.status[errorToStatus(aborted.signal.reason, log).code], "CANCELLED");
    assert.equal(grpc.status[errorToStatus(new UnavailableError("down"), log).code], "UNAVAILABLE");
    assert.equal(grpc.status[errorToStatus(new NotFoundError("gone"), log).code], "NOT_FOUND");
  });
});

for (const dialect of DIALECTS) {
  describe(`jobwatch server (${dialect})`, () => {
    let s: TestServer;
    before(async () => {
      s = await startTestServer({ dialect });
    });
    after(async () => {
      await s?.stop();
    });

    const worker = () => s.as(s.tokens.worker).worker;
    const jobsOf = (token: string) => s.as(token).jobs;
    /** Creates a job for `username` through the worker API. */
    const create = async (username: string, operationType = "add_golden_repo", resource?: string): Promise<Job> => {
      const { job } = await worker().createJob({ operationType, username, ...(resource ? { resource } : {}) });
      return job!;
    };

    describe("authentication and permissions", () => {
      test("a call without a token is UNAUTHENTICATED and says how to send one", async () => {
        const error = await expectCode(
          s.as(undefined).jobs.getJobDetails({ jobId: randomUUID() }),
          grpc.status.UNAUTHENTICATED,
        );
        assert.match(error.details, /authorization: Bearer/);
      });

      test("an unknown or malformed token is UNAUTHENTICATED", async () => {
        await expectCode(
          s.as(`jw_000000000000_${"A".repeat(43)}`).jobs.getJobDetails({ jobId: randomUUID() }),
          grpc.status.UNAUTHENTICATED,
        );
        await expectCode(s.as("not-a-token").jobs.getJobDetails({ jobId: randomUUID() }), grpc.status.UNAUTHENTICATED);
        await expectCode(
          s.as("not-a-token").worker.createJob({ operationType: "x", username: "y" }),
          grpc.status.UNAUTHENTICATED,
        );
      });

      test("a role without the rpc's permission is PERMISSION_DENIED naming the permission", async () => {
        const asAlice = await expectCode(
          s.as(s.tokens.alice).worker.createJob({ operationType: "x", username: "alice" }),
          grpc.status.PERMISSION_DENIED,
        );
        assert.match(asAlice.details, /report_jobs/);
        // The interceptor's rejections carry the same typed detail as a handler's.
        assert.equal(errorInfoOf(asAlice)?.reason, "MISSING_PERMISSION");
        assert.equal(errorInfoOf(asAlice)?.metadata.permission, "report_jobs");
        const asWorker = await expectCode(
          jobsOf(s.tokens.worker).getJobDetails({ jobId: randomUUID() }),
          grpc.status.PERMISSION_DENIED,
        );
        assert.match(asWorker.details, /query_repos/);
      });

      test("a client-sent principal header impersonates nobody", async () => {
        const bobs = await create("bob");
        const forged = JSON.stringify({ tokenId: "000000000000", username: "admin", role: "admin" });
        const impostor = s.as(s.tokens.alice, { "x-jobwatch-principal": forged });
        const error = await expectCode(impostor.jobs.getJobDetails({ jobId: bobs.jobId }), grpc.status.NOT_FOUND);
        assert.equal(error.details, notFound(bobs.jobId));
        const forgedAsBob = JSON.stringify({ tokenId: "000000000000", username: "bob", role: "normal_user" });
        await expectCode(
          s.as(s.tokens.alice, { "x-jobwatch-principal": forgedAsBob }).jobs.getJobDetails({ jobId: bobs.jobId }),
          grpc.status.NOT_FOUND,
        );
        const { jobs } = await impostor.jobs.listJobs({ pageSize: 100 });
        assert.ok(jobs.every((j) => j.username === "alice"));
        // And a worker role cannot be claimed either.
        await expectCode(impostor.worker.startJob({ jobId: bobs.jobId }), grpc.status.PERMISSION_DENIED);
      });
    });

    describe("GetJobDetails", () => {
      test("a job_id that is not a UUID is INVALID_ARGUMENT with a job_id field violation", async () => {
        for (const jobId of ["", "42", "3f0e2c1a-9b7d-4c2e-8f1a", "zzzzzzzz-9b7d-4c2e-8f1a-2b3c4d5e6f70"]) {
          const error = await expectCode(jobsOf(s.tokens.alice).getJobDetails({ jobId }), grpc.status.INVALID_ARGUMENT);
          assert.match(violation(error, "job_id"), /must be a UUID like .*; got '/);
        }
      });

      test("an unknown job is NOT_FOUND saying it may have expired", async () => {
        const jobId = randomUUID();
        const error = await expectCode(jobsOf(s.tokens.alice).getJobDetails({ jobId }), grpc.status.NOT_FOUND);
        assert.equal(error.details, notFound(jobId));
      });

      test("another user's job answers exactly like a missing one; manage_jobs sees it", async () => {
        const bobs = await create("bob");
        const other = await expectCode(
          jobsOf(s.tokens.alice).getJobDetails({ jobId: bobs.jobId }),
          grpc.status.NOT_FOUND,
        );
        assert.equal(other.details, notFound(bobs.jobId));
        // The same id with a never-used suffix: the message differs only by the id.
        const missingId = randomUUID();
        const missing = await expectCode(
          jobsOf(s.tokens.alice).getJobDetails({ jobId: missingId }),
          grpc.status.NOT_FOUND,
        );
        assert.equal(missing.details.replace(missingId, "ID"), other.details.replace(bobs.jobId, "ID"));
        assert.deepEqual(
          missing.metadata.get("grpc-status-details-bin").length,
          other.metadata.get("grpc-status-details-bin").length,
        );

        const { job } = await jobsOf(s.tokens.bob).getJobDetails({ jobId: bobs.jobId });
        assert.equal(job?.username, "bob");
        const { job: asAdmin } = await jobsOf(s.tokens.admin).getJobDetails({ jobId: bobs.jobId });
        assert.equal(asAdmin?.jobId, bobs.jobId);
      });

      test("an upper-case UUID finds the job (ids are case-insensitive)", async () => {
        const job = await create("alice");
        const { job: found } = await jobsOf(s.tokens.alice).getJobDetails({ jobId: job.jobId.toUpperCase() });
        assert.equal(found?.jobId, job.jobId);
      });

      test("a new job has every field of the seed's get_job_details", async () => {
        const created = await create("alice", "refresh_golden_repo");
        const { job } = await jobsOf(s.tokens.alice).getJobDetails({ jobId: created.jobId });
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
    });

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
        const { job: now } = await jobsOf(s.tokens.alice).getJobDetails({ jobId: job.jobId });
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
          const { job: final } = await jobsOf(s.tokens.alice).getJobDetails({ jobId: job.jobId });
          assert.equal(final?.revision, 3);
          assert.ok(final?.status === COMPLETED || final?.status === FAILED);
        }
      });
    });

    describe("WatchJob", () => {
      test("a watcher sees every status change of the lifecycle in order and the stream ends OK", async () => {
        const job = await create("alice");
        const watch = s.watch(s.tokens.alice, { jobId: job.jobId });
        await watch.received(1);
        await worker().startJob({ jobId: job.jobId });
        for (const progress of [10, 50, 90]) {
          await worker().reportProgress({
            jobId: job.jobId,
            progress,
            phase: "semantic",
            detail: `${progress}/100 files indexed`,
          });
        }
        await worker().completeJob({ jobId: job.jobId, result: { indexed: 100 } });
        const end = await watch.done;
        assert.equal(grpc.status[end.code], "OK");
        assert.deepEqual(transitions(watch.jobs), [PENDING, RUNNING, COMPLETED]);
        assertInRevisionOrder(watch.jobs);
        const last = watch.jobs[watch.jobs.length - 1]!;
        assert.equal(last.progress, 100);
        assert.deepEqual(last.result, { indexed: 100 });
        assert.ok(last.completedAt instanceof Date);
      });

      test("a watch of a finished job gives its state and ends; after_revision resumes with what was missed", async () => {
        const job = await create("alice");
        await worker().startJob({ jobId: job.jobId });
        await worker().failJob({ jobId: job.jobId, error: "disk full" });
        const whole = s.watch(s.tokens.alice, { jobId: job.jobId });
        assert.equal(grpc.status[(await whole.done).code], "OK");
        assert.deepEqual(
          whole.jobs.map((j) => [j.status, j.error]),
          [[FAILED, "disk full"]],
        );

        const resumed = s.watch(s.tokens.alice, { jobId: job.jobId, afterRevision: 1 });
        assert.equal(grpc.status[(await resumed.done).code], "OK");
        assert.deepEqual(
          resumed.jobs.map((j) => j.status),
          [RUNNING, FAILED],
        );

        const current = s.watch(s.tokens.alice, { jobId: job.jobId, afterRevision: 3 });
        assert.equal(grpc.status[(await current.done).code], "OK");
        assert.deepEqual(current.jobs, []);
      });

      test("WatchJob errors: bad id, another user's job, unknown job", async () => {
        const bad = await s.watch(s.tokens.alice, { jobId: "nope" }).done;
        assert.equal(grpc.status[bad.code], "INVALID_ARGUMENT");
        violation(bad.error!, "job_id");

        const bobs = await create("bob");
        const other = await s.watch(s.tokens.alice, { jobId: bobs.jobId }).done;
        assert.equal(grpc.status[other.code], "NOT_FOUND");
        assert.equal(other.details, notFound(bobs.jobId));
        const missingId = randomUUID();
        const missing = await s.watch(s.tokens.alice, { jobId: missingId }).done;
        assert.equal(missing.details, notFound(missingId));

        const negative = await s.watch(s.tokens.alice, { jobId: bobs.jobId, afterRevision: -1 }).done;
        assert.equal(grpc.status[negative.code], "INVALID_ARGUMENT");
        violation(negative.error!, "after_revision");
      });

      test("several watchers of one job each get every status change and the same final job", async () => {
        const job = await create("alice");
        // Different principals share the hub's changes (and so the encoded messages).
        const watches = [
          ...Array.from({ length: 4 }, () => s.watch(s.tokens.alice, { jobId: job.jobId })),
          s.watch(s.tokens.admin, { jobId: job.jobId }),
        ];
        await Promise.all(watches.map((w) => w.received(1)));
        await worker().startJob({ jobId: job.jobId });
        for (const progress of [25, 50, 75])
          await worker().reportProgress({ jobId: job.jobId, progress, detail: `${progress}%` });
        await worker().completeJob({ jobId: job.jobId, result: { watchers: 5 } });
        const ends = await Promise.all(watches.map((w) => w.done));
        assert.deepEqual(
          ends.map((e) => grpc.status[e.code]),
          ["OK", "OK", "OK", "OK", "OK"],
        );
        const reference = watches[0]!.jobs.at(-1)!;
        for (const watch of watches) {
          assertInRevisionOrder(watch.jobs);
          assert.deepEqual(transitions(watch.jobs), [PENDING, RUNNING, COMPLETED]);
          assert.deepEqual(watch.jobs.at(-1), reference);
        }
        assert.equal(reference.revision, 6);
        assert.deepEqual(reference.result, { watchers: 5 });
      });

      test("a client cancel releases the watcher", async () => {
        const job = await create("alice");
        const watch = s.watch(s.tokens.alice, { jobId: job.jobId });
        await watch.received(1);
        const before = s.hub.watcherCount;
        assert.ok(before >= 1);
        watch.cancel();
        assert.equal(grpc.status[(await watch.done).code], "CANCELLED");
        // The server learns of the cancel asynchronously; a change to the job must not reach a released watcher.
        while (s.hub.watcherCount >= before) await new Promise((r) => setImmediate(r));
        assert.equal(s.hub.watcherCount, before - 1);
      });

      test("a deadline ends the watch with DEADLINE_EXCEEDED and releases the watcher", async () => {
        const job = await create("alice");
        const before = s.hub.watcherCount;
        const watch = s.watch(s.tokens.alice, { jobId: job.jobId }, { deadline: Date.now() + 300 });
        await watch.received(1);
        assert.equal(grpc.status[(await watch.done).code], "DEADLINE_EXCEEDED");
        while (s.hub.watcherCount > before) await new Promise((r) => setImmediate(r));
        assert.equal(s.hub.watcherCount, before);
      });

      test("a watcher that reads nothing while 500 progress reports arrive stays bounded and gets the newest", async () => {
        const job = await create("alice");
        await worker().startJob({ jobId: job.jobId });
        const watch = s.watch(s.tokens.alice, { jobId: job.jobId });
        await watch.received(1);
        watch.stream.pause();
        let maxBuffered = 0;
        // Big details fill the HTTP/2 window quickly, so most reports meet a reader that does not read.
        for (let i = 1; i <= 500; i++) {
          await worker().reportProgress({
            jobId: job.jobId,
            progress: Math.floor(i / 5),
            detail: `${i}/500 files indexed `.padEnd(900, "."),
          });
          maxBuffered = Math.max(maxBuffered, s.hub.bufferedCount);
        }
        await worker().completeJob({ jobId: job.jobId, result: { indexed: 500 } });
        watch.stream.resume();
        const end = await watch.done;
        assert.equal(grpc.status[end.code], "OK");
        assert.ok(maxBuffered <= 4, `the hub held ${maxBuffered} changes for one watcher`);
        assert.ok(watch.jobs.length < 500, `coalescing should have dropped stale progress, got ${watch.jobs.length}`);
        assertInRevisionOrder(watch.jobs);
        assert.deepEqual(transitions(watch.jobs), [RUNNING, COMPLETED]);
        const lastRunning = watch.jobs.filter((j) => j.status === RUNNING).pop()!;
        assert.equal(lastRunning.progress, 100);
        assert.match(lastRunning.detail ?? "", /^500\/500 files indexed/);
      });

      test("a watcher on server A sees changes written through server B on the same database", async () => {
        const b = await startTestServer({ sharing: s });
        try {
          const job = await create("alice");
          const watch = s.watch(s.tokens.alice, { jobId: job.jobId });
          await watch.received(1);
          const viaB = b.as(b.tokens.worker).worker;
          await viaB.startJob({ jobId: job.jobId });
          await viaB.reportProgress({ jobId: job.jobId, progress: 40 });
          await viaB.completeJob({ jobId: job.jobId, result: { via: "B" } });
          const end = await watch.done;
          assert.equal(grpc.status[end.code], "OK");
          assert.deepEqual(transitions(watch.jobs), [PENDING, RUNNING, COMPLETED]);
          assertInRevisionOrder(watch.jobs);
          assert.deepEqual(watch.jobs[watch.jobs.length - 1]!.result, { via: "B" });
        } finally {
          await b.stop();
        }
      });
    });

    describe("ListJobs", () => {
      test("pages newest first without repeats or gaps while jobs are created, and only the caller's", async () => {
        const op = `list_${randomUUID().slice(0, 8)}`;
        const ids: string[] = [];
        for (let batch = 0; batch < 10; batch++) {
          const made = await Promise.all(Array.from({ length: 25 }, () => create("alice", op)));
          ids.push(...made.map((j) => j.jobId));
        }
        await create("bob", op);
        const seen: string[] = [];
        let pageToken = "";
        let pages = 0;
        // After the first page a worker keeps creating alice's jobs while she pages: they are newer than the
        // cursor and must not appear, nor push older jobs into a repeat or a gap.
        let creating = true;
        let creator: Promise<number> | undefined;
        do {
          const page = await jobsOf(s.tokens.alice).listJobs({ operationType: op, pageToken });
          seen.push(...page.jobs.map((j) => j.jobId));
          assert.ok(page.jobs.every((j) => j.username === "alice"));
          pageToken = page.nextPageToken;
          pages++;
          creator ??= (async () => {
            let made = 0;
            while (creating || made === 0) {
              await create("alice", op);
              made++;
            }
            return made;
          })();
        } while (pageToken !== "");
        creating = false;
        assert.ok((await creator) > 0);
        assert.equal(pages, 5, "250 jobs in pages of the default 50");
        assert.deepEqual([...seen].sort(), [...ids].sort());
        assert.equal(new Set(seen).size, seen.length);
        const { jobs } = await jobsOf(s.tokens.alice).listJobs({ operationType: op });
        for (let i = 1; i < jobs.length; i++) {
          const a = jobs[i - 1]!;
          const b = jobs[i]!;
          assert.ok(
            a.createdAt!.getTime() > b.createdAt!.getTime() ||
              (a.createdAt!.getTime() === b.createdAt!.getTime() && a.jobId > b.jobId),
          );
        }
      });

      test("filters by status, and admins by username", async () => {
        const op = `filter_${randomUUID().slice(0, 8)}`;
        const running = await create("alice", op);
        await worker().startJob({ jobId: running.jobId });
        await create("alice", op);
        await create("bob", op);
        const { jobs } = await jobsOf(s.tokens.alice).listJobs({ operationType: op, statuses: [RUNNING] });
        assert.deepEqual(
          jobs.map((j) => j.jobId),
          [running.jobId],
        );
        const all = await jobsOf(s.tokens.admin).listJobs({ operationType: op });
        assert.equal(all.jobs.length, 3);
        const bobs = await jobsOf(s.tokens.admin).listJobs({ operationType: op, username: "bob" });
        assert.deepEqual(
          bobs.jobs.map((j) => j.username),
          ["bob"],
        );
      });

      test("errors: negative page_size, a token from another query, username without manage_jobs, bad time range", async () => {
        const negative = await expectCode(
          jobsOf(s.tokens.alice).listJobs({ pageSize: -1 }),
          grpc.status.INVALID_ARGUMENT,
        );
        violation(negative, "page_size");
        const op = `token_${randomUUID().slice(0, 8)}`;
        await create("alice", op);
        await create("alice", op);
        const first = await jobsOf(s.tokens.alice).listJobs({ operationType: op, pageSize: 1 });
        assert.notEqual(first.nextPageToken, "");
        const foreign = await expectCode(
          jobsOf(s.tokens.alice).listJobs({ operationType: "other", pageSize: 1, pageToken: first.nextPageToken }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(foreign, "page_token"), /other filters/);
        const garbage = await expectCode(
          jobsOf(s.tokens.alice).listJobs({ pageToken: "not a token" }),
          grpc.status.INVALID_ARGUMENT,
        );
        violation(garbage, "page_token");
        const denied = await expectCode(
          jobsOf(s.tokens.alice).listJobs({ username: "bob" }),
          grpc.status.PERMISSION_DENIED,
        );
        assert.match(denied.details, /manage_jobs/);
        const range = await expectCode(
          jobsOf(s.tokens.alice).listJobs({ createdAfter: new Date(2000), createdBefore: new Date(1000) }),
          grpc.status.INVALID_ARGUMENT,
        );
        violation(range, "created_after");
      });

      test("a status filter with UNSPECIFIED or an unknown number is INVALID_ARGUMENT listing the statuses to use", async () => {
        const allowed =
          /may contain only JOB_STATUS_PENDING, JOB_STATUS_RUNNING, JOB_STATUS_COMPLETED, JOB_STATUS_FAILED, JOB_STATUS_CANCELLED; leave it empty for every status/;
        const unspecified = await expectCode(
          jobsOf(s.tokens.alice).listJobs({ statuses: [JobStatus.JOB_STATUS_UNSPECIFIED] }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(unspecified, "statuses"), allowed);
        assert.match(violation(unspecified, "statuses"), /got JOB_STATUS_UNSPECIFIED$/);
        const both = await expectCode(
          jobsOf(s.tokens.alice).listJobs({ statuses: [RUNNING, JobStatus.JOB_STATUS_UNSPECIFIED, 9 as JobStatus] }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(both, "statuses"), /got JOB_STATUS_UNSPECIFIED, unknown number 9$/);
      });

      test("created_after / created_before outside Timestamp's range are INVALID_ARGUMENT naming the field", async () => {
        const range = /must be a time from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z, or unset; got /;
        // Far outside even a JavaScript Date: without the check this reached the query as NaN.
        const far = await expectCode(
          listJobsBySeconds(s, s.tokens.alice, { after: 1e13 }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(far, "created_after"), range);
        const farBefore = await expectCode(
          listJobsBySeconds(s, s.tokens.alice, { before: -1e13 }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(farBefore, "created_before"), range);
        // A Date can hold it, a Timestamp cannot.
        const year10000 = await expectCode(
          listJobsBySeconds(s, s.tokens.alice, { after: 0, before: 253_402_300_800 }),
          grpc.status.INVALID_ARGUMENT,
        );
        assert.match(violation(year10000, "created_before"), /got \+010000-01-01T00:00:00.000Z$/);
        // The ends of the range themselves are fine.
        const job = await create("alice");
        const { jobs } = await listJobsBySeconds(s, s.tokens.alice, {
          after: -62_135_596_800,
          before: 253_402_300_799,
        });
        assert.ok(jobs.some((j) => j.jobId === job.jobId));
      });

      test("page_size above 100 is clamped to 100", async () => {
        const { jobs } = await jobsOf(s.tokens.admin).listJobs({ pageSize: 1000 });
        assert.ok(jobs.length <= 100);
      });
    });

    describe("GetJobStatistics", () => {
      test("a user counts their own jobs; an admin everyone's or one user's", async () => {
        const mine = await jobsOf(s.tokens.bob).getJobStatistics({});
        const bobsJobs = await jobsOf(s.tokens.admin).getJobStatistics({ username: "bob" });
        assert.equal(mine.total, bobsJobs.total);
        assert.equal(mine.total, mine.pending + mine.running + mine.completed + mine.failed + mine.cancelled);
        assert.equal(mine.active, mine.running);
        const all = await jobsOf(s.tokens.admin).getJobStatistics({});
        assert.ok(all.total > mine.total);
        const denied = await expectCode(
          jobsOf(s.tokens.alice).getJobStatistics({ username: "bob" }),
          grpc.status.PERMISSION_DENIED,
        );
        assert.match(denied.details, /manage_jobs/);
        const window = await expectCode(
          jobsOf(s.tokens.alice).getJobStatistics({ window: { seconds: 0, nanos: 0 } }),
          grpc.status.INVALID_ARGUMENT,
        );
        violation(window, "window");
        for (const seconds of [315_576_001, 2 ** 52]) {
          const tooLong = await expectCode(
            jobsOf(s.tokens.alice).getJobStatistics({ window: { seconds, nanos: 0 } }),
            grpc.status.INVALID_ARGUMENT,
          );
          assert.match(violation(tooLong, "window"), new RegExp(`at most 315576000s \\(10 years\\); got ${seconds}s`));
        }
        const tenYears = await jobsOf(s.tokens.alice).getJobStatistics({ window: { seconds: 315_576_000, nanos: 0 } });
        assert.ok(tenYears.windowStart!.getTime() <= Date.now() - 315_576_000_000);
      });

      test("finished jobs in the window give a success rate and durations", async () => {
        const op = `stats_${randomUUID().slice(0, 8)}`;
        const a = await create("carol", op);
        await worker().startJob({ jobId: a.jobId });
        await worker().completeJob({ jobId: a.jobId });
        const b = await create("carol", op);
        await worker().failJob({ jobId: b.jobId, error: "no" });
        const stats = await jobsOf(s.tokens.admin).getJobStatistics({ username: "carol" });
        assert.equal(stats.finishedInWindow, 2);
        assert.equal(stats.successRate, 0.5);
        assert.equal(stats.byOperationType[op], 2);
        assert.ok(stats.p50Duration !== undefined && stats.p95Duration !== undefined);
        assert.ok(stats.windowStart instanceof Date);
      });
    });

    describe("CancelJob and history", () => {
      test("a PENDING job is cancelled at once; cancelling again is OK; a finished one is FAILED_PRECONDITION", async () => {
        const job = await create("alice");
        const { job: cancelled } = await jobsOf(s.tokens.alice).cancelJob({ jobId: job.jobId, reason: "not needed" });
        assert.equal(cancelled?.status, CANCELLED);
        assert.ok(cancelled?.completedAt instanceof Date);
        const { job: again } = await jobsOf(s.tokens.alice).cancelJob({ jobId: job.jobId });
        assert.equal(again?.revision, cancelled?.revision);

        const done = await create("alice");
        await worker().completeJob({ jobId: done.jobId });
        const error = await expectCode(
          jobsOf(s.tokens.alice).cancelJob({ jobId: done.jobId }),
          grpc.status.FAILED_PRECONDITION,
        );
        assert.match(error.details, /cannot cancel a job in COMPLETED status/);
      });

      test("a RUNNING job gets cancel_requested, the worker and a watcher see it, and the worker confirms", async () => {
        const job = await create("alice");
        await worker().startJob({ jobId: job.jobId });
        const watch = s.watch(s.tokens.alice, { jobId: job.jobId });
        await watch.received(1);
        const { job: requested } = await jobsOf(s.tokens.alice).cancelJob({ jobId: job.jobId, reason: "wrong repo" });
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
        const error = await expectCode(jobsOf(s.tokens.alice).cancelJob({ jobId: bobs.jobId }), grpc.status.NOT_FOUND);
        assert.equal(error.details, notFound(bobs.jobId));
        const reason = await expectCode(
          jobsOf(s.tokens.bob).cancelJob({ jobId: bobs.jobId, reason: "r".repeat(1001) }),
          grpc.status.INVALID_ARGUMENT,
        );
        violation(reason, "reason");
        const { job } = await jobsOf(s.tokens.admin).cancelJob({ jobId: bobs.jobId });
        assert.equal(job?.status, CANCELLED);
      });

      test("history lists every status change in order, for the owner only", async () => {
        const job = await create("alice");
        await worker().startJob({ jobId: job.jobId });
        await worker().reportProgress({ jobId: job.jobId, progress: 50, phase: "fts" });
        await worker().failJob({ jobId: job.jobId, error: "index corrupt" });
        const { events } = await jobsOf(s.tokens.alice).getJobHistory({ jobId: job.jobId });
        assert.deepEqual(transitions(events as unknown as Job[]), [PENDING, RUNNING, FAILED]);
        const last = events[events.length - 1]!;
        assert.equal(last.error, "index corrupt");
        for (let i = 1; i < events.length; i++) assert.ok(events[i]!.revision > events[i - 1]!.revision);
        const error = await expectCode(jobsOf(s.tokens.bob).getJobHistory({ jobId: job.jobId }), grpc.status.NOT_FOUND);
        assert.equal(error.details, notFound(job.jobId));
        violation(
          await expectCode(jobsOf(s.tokens.bob).getJobHistory({ jobId: "x" }), grpc.status.INVALID_ARGUMENT),
          "job_id",
        );
      });
    });

    describe("sweepers", () => {
      const short = {
        staleAfterMs: 300,
        cancelGraceMs: 300,
        retentionMs: 30 * 24 * 3600_000,
        sweepIntervalMs: 3600_000,
      };

      test("a job whose worker stops reporting is FAILED by exactly one of two replicas, and watchers see it", async () => {
        const r1 = await startTestServer({ sharing: s, sweeper: short });
        const r2 = await startTestServer({ sharing: s, sweeper: short });
        try {
          const job = await create("alice");
          await worker().startJob({ jobId: job.jobId });
          const watch = s.watch(s.tokens.alice, { jobId: job.jobId });
          const end = await watch.done;
          assert.equal(grpc.status[end.code], "OK");
          const last = watch.jobs[watch.jobs.length - 1]!;
          assert.equal(last.status, FAILED);
          assert.match(last.error ?? "", /^worker stopped reporting: no heartbeat since /);
          assert.equal(last.revision, 3);
          const { events } = await jobsOf(s.tokens.alice).getJobHistory({ jobId: job.jobId });
          assert.equal(events.filter((e) => e.status === FAILED).length, 1);
        } finally {
          await r1.stop();
          await r2.stop();
        }
      });

      test("a cancellation the worker never confirms ends CANCELLED with an error saying so", async () => {
        const r1 = await startTestServer({ sharing: s, sweeper: { ...short, staleAfterMs: 3600_000 } });
        try {
          const job = await create("alice");
          await worker().startJob({ jobId: job.jobId });
          const watch = s.watch(s.tokens.alice, { jobId: job.jobId });
          await watch.received(1);
          await jobsOf(s.tokens.alice).cancelJob({ jobId: job.jobId, reason: "stop" });
          const end = await watch.done;
          assert.equal(grpc.status[end.code], "OK");
          const last = watch.jobs[watch.jobs.length - 1]!;
          assert.equal(last.status, CANCELLED);
          assert.match(last.error ?? "", /confirm/);
        } finally {
          await r1.stop();
        }
      });

      test("retention removes finished jobs past the retention period and nothing else", async () => {
        const own = await startTestServer({ dialect });
        try {
          const w = own.as(own.tokens.worker).worker;
          const done = (await w.createJob({ operationType: "x", username: "alice" })).job!;
          await w.completeJob({ jobId: done.jobId });
          const running = (await w.createJob({ operationType: "x", username: "alice" })).job!;
          await w.startJob({ jobId: running.jobId });
          const pending = (await w.createJob({ operationType: "x", username: "alice" })).job!;
          const month = 30 * 24 * 3600_000;
          const sweeper = new Sweeper({
            store: own.store,
            hub: own.hub,
            log: quiet,
            ...short,
            retentionMs: month,
            now: () => Date.now() + month + 60_000,
          });
          assert.equal(await sweeper.sweepRetention(), 1);
          const alice = own.as(own.tokens.alice).jobs;
          const gone = await expectCode(alice.getJobDetails({ jobId: done.jobId }), grpc.status.NOT_FOUND);
          assert.equal(gone.details, notFound(done.jobId));
          await expectCode(alice.getJobHistory({ jobId: done.jobId }), grpc.status.NOT_FOUND);
          assert.equal((await alice.getJobDetails({ jobId: running.jobId })).job?.status, RUNNING);
          assert.equal((await alice.getJobDetails({ jobId: pending.jobId })).job?.status, PENDING);
        } finally {
          await own.stop();
        }
      });
    });

    describe("health and shutdown", () => {
      test("health is SERVING for the server and each service, without a token", async () => {
        for (const name of ["", "jobwatch.v1.JobService", "jobwatch.v1.JobWorkerService"]) {
          assert.equal(await healthCheck(s.address, name), "SERVING");
        }
      });

      test("health is NOT_SERVING while the database cannot be reached, and SERVING again after", async () => {
        let down = false;
        const flaky = (store: JobStore): JobStore =>
          new Proxy(store, {
            get(target, property) {
              if (property === "ping" && down) return async () => Promise.reject(new Error("connection refused"));
              const value = Reflect.get(target, property, target) as unknown;
              return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
            },
          });
        const r = await startTestServer({ sharing: s, healthIntervalMs: 20, wrapStore: flaky });
        const client = new HealthClient(r.address, grpc.credentials.createInsecure());
        try {
          const seen: ServingStatus[] = [];
          const call = client.watch({ service: "jobwatch.v1.JobService" });
          const next = (want: ServingStatus): Promise<void> =>
            new Promise((resolve) => {
              const onData = (m: { status: ServingStatus }): void => {
                seen.push(m.status);
                if (m.status === want) {
                  call.off("data", onData);
                  resolve();
                }
              };
              call.on("data", onData);
            });
          await next("SERVING");
          down = true;
          await next("NOT_SERVING");
          assert.equal(await healthCheck(r.address, ""), "NOT_SERVING");
          down = false;
          await next("SERVING");
          call.cancel();
          call.on("error", () => undefined);
        } finally {
          client.close();
          await r.stop();
        }
      });

      test("listening on a port in use fails with one clear line", async () => {
        const second = createServer({
          store: s.store,
          hub: new WatchHub({ store: s.store, pollMs: 1000, log: quiet }),
          authenticator: { authenticate: () => Promise.reject(new Error("never called")) },
          log: quiet,
        });
        try {
          await assert.rejects(second.listen(s.address), {
            message: `cannot listen on ${s.address}: address already in use`,
          });
        } finally {
          await second.shutdown(0);
        }
      });

      test("shutdown lets a unary call in flight finish", async () => {
        let entered!: () => void;
        const inside = new Promise<void>((r) => (entered = r));
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        const slowReads = (store: JobStore): JobStore =>
          new Proxy(store, {
            get(target, property) {
              const value = Reflect.get(target, property, target) as unknown;
              if (property === "getJob") {
                return async (jobId: string) => {
                  entered();
                  await gate;
                  return target.getJob(jobId);
                };
              }
              return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
            },
          });
        const r = await startTestServer({ sharing: s, wrapStore: slowReads });
        const job = await create("alice");
        const call = r.as(r.tokens.alice).jobs.getJobDetails({ jobId: job.jobId });
        await inside;
        const stopping = r.stop();
        release();
        const { job: read } = await call;
        assert.equal(read?.jobId, job.jobId);
        await stopping;
      });

      test("shutdown reaches a watch whose client stopped reading: UNAVAILABLE once it reads, not a forced close", async () => {
        const r = await startTestServer({ sharing: s });
        const viaR = r.as(r.tokens.worker).worker;
        const job = (await viaR.createJob({ operationType: "add_golden_repo", username: "alice" })).job!;
        await viaR.startJob({ jobId: job.jobId });
        const watch = r.watch(r.tokens.alice, { jobId: job.jobId });
        await watch.received(1);
        watch.stream.pause();
        // Big details fill the HTTP/2 window: the server's handler ends up waiting for the client to read.
        for (let i = 1; i <= 300; i++) {
          await viaR.reportProgress({
            jobId: job.jobId,
            progress: Math.floor(i / 3),
            detail: `${i}/300 `.padEnd(900, "."),
          });
        }
        assert.ok(r.hub.bufferedCount >= 1, "the newest change should wait in the hub for the stalled stream");
        const hubClosed = new Promise((resolve) => r.hub.closing.addEventListener("abort", resolve));
        const stopping = r.stop();
        await hubClosed;
        watch.stream.resume();
        const end = await watch.done;
        await stopping;
        // A forced close (the shutdown timeout) would have ended it CANCELLED, without the revision.
        assert.equal(grpc.status[end.code], "UNAVAILABLE");
        const last = watch.jobs.at(-1)!;
        assert.equal(end.details, `server is shutting down: reconnect and resume with after_revision=${last.revision}`);
        // Resuming there on another server continues from the newest state, then the end.
        const resumed = s.watch(s.tokens.alice, { jobId: job.jobId, afterRevision: last.revision });
        await worker().completeJob({ jobId: job.jobId });
        assert.equal(grpc.status[(await resumed.done).code], "OK");
        assert.equal(resumed.jobs.at(-1)?.status, COMPLETED);
        assert.ok(resumed.jobs.every((j) => j.revision > last.revision));
      });

      test("shutdown ends an open watch with UNAVAILABLE naming the revision to resume after", async () => {
        const r = await startTestServer({ sharing: s });
        const job = await create("alice");
        await worker().startJob({ jobId: job.jobId });
        const watch = r.watch(r.tokens.alice, { jobId: job.jobId });
        await watch.received(1);
        await r.stop();
        const end = await watch.done;
        assert.equal(grpc.status[end.code], "UNAVAILABLE");
        assert.match(end.details, /after_revision=2/);
        // The other server still serves.
        const { job: still } = await jobsOf(s.tokens.alice).getJobDetails({ jobId: job.jobId });
        assert.equal(still?.status, RUNNING);
      });
    });
  });
}

// What the rpc test files share: status names, assertions on failed calls, and one server per dialect.
import assert from "node:assert/strict";
import { after, before } from "node:test";
import type { ServiceError } from "@grpc/grpc-js";
import * as grpc from "@grpc/grpc-js";
import type { Job } from "../../src/gen/jobwatch/v1/job.js";
import { JobStatus } from "../../src/gen/jobwatch/v1/job.js";
import type { TestDialect } from "./databases.js";
import type { TestServer } from "./server.js";
import { failure, fieldViolationsOf, startTestServer } from "./server.js";

export const { PENDING, RUNNING, COMPLETED, FAILED, CANCELLED } = {
  PENDING: JobStatus.JOB_STATUS_PENDING,
  RUNNING: JobStatus.JOB_STATUS_RUNNING,
  COMPLETED: JobStatus.JOB_STATUS_COMPLETED,
  FAILED: JobStatus.JOB_STATUS_FAILED,
  CANCELLED: JobStatus.JOB_STATUS_CANCELLED,
};

/** The NOT_FOUND message of a job id, whether missing or someone else's. */
export const notFound = (jobId: string): string =>
  `job ${jobId} not found (finished jobs are removed after the retention period)`;

/** Asserts a failed call's code (by name, so a mismatch reads well) and returns the error. */
export async function expectCode(call: Promise<unknown>, code: grpc.status): Promise<ServiceError> {
  const error = await failure(call);
  assert.equal(grpc.status[error.code], grpc.status[code], `details: ${error.details}`);
  return error;
}

/** Asserts exactly one BadRequest field violation for `field` and returns its description. */
export function violation(error: ServiceError, field: string): string {
  const violations = fieldViolationsOf(error);
  const found = violations.filter((v) => v.field === field);
  assert.equal(found.length, 1, `expected a violation for ${field}, got ${JSON.stringify(violations)}`);
  return found[0]!.description;
}

/** Statuses in the order seen, consecutive repeats collapsed. */
export function transitions(jobs: Job[]): JobStatus[] {
  const out: JobStatus[] = [];
  for (const job of jobs) if (out[out.length - 1] !== job.status) out.push(job.status);
  return out;
}

/** Revisions strictly increase. */
export function assertInRevisionOrder(jobs: Job[]): void {
  for (let i = 1; i < jobs.length; i++) {
    assert.ok(
      jobs[i]!.revision > jobs[i - 1]!.revision,
      `revision ${jobs[i]!.revision} after ${jobs[i - 1]!.revision}`,
    );
  }
}

/** The server of a test file's suite, and shorthands for its clients. */
export interface ServerSuite {
  /** The server; set once the suite's before() has run. */
  readonly server: TestServer;
  /** JobWorkerService as the service worker. */
  worker(): TestServer["as"] extends (t: string) => infer A ? (A extends { worker: infer W } ? W : never) : never;
  /** JobService as the holder of `token`. */
  jobsOf(token: string): ReturnType<TestServer["as"]>["jobs"];
  /** Creates a job for `username` through the worker API. */
  create(username: string, operationType?: string, resource?: string): Promise<Job>;
}

/** Starts a server on a fresh database of `dialect` before the suite's tests and stops it after (call inside describe). */
export function serverSuite(dialect: TestDialect): ServerSuite {
  let s: TestServer | undefined;
  before(async () => {
    s = await startTestServer({ dialect });
  });
  after(async () => {
    await s?.stop();
  });
  const server = (): TestServer => {
    assert.ok(s, "the suite's server is not started yet");
    return s;
  };
  const worker = () => server().as(server().tokens.worker).worker;
  return {
    get server() {
      return server();
    },
    worker,
    jobsOf: (token) => server().as(token).jobs,
    async create(username, operationType = "add_golden_repo", resource) {
      const { job } = await worker().createJob({ operationType, username, ...(resource ? { resource } : {}) });
      return job!;
    },
  };
}

// Errors stay small whatever the request: a status message and its details fit in HTTP/2 trailers, so a
// bad request fails on its own instead of hanging every call on its connection.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import pino from "pino";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError } from "../src/errors.js";
import type { JobStatus } from "../src/gen/jobwatch/v1/job.js";
import { ERROR_LIMITS, errorToStatus, STATUS_DETAILS_TRAILER } from "../src/server/error-status.js";
import { DIALECTS } from "./helpers/databases.js";
import type { TestServer } from "./helpers/server.js";
import { failure, fieldViolationsOf, startTestServer } from "./helpers/server.js";

const quiet = pino({ level: "silent" });

/** Bytes of a status's trailers as sent: grpc-message plus the base64 of grpc-status-details-bin. */
function trailerBytes(status: grpc.StatusObject): number {
  let n = Buffer.byteLength(encodeURIComponent(status.details));
  for (const [key, values] of Object.entries(status.metadata.toHttp2Headers())) {
    for (const value of [values].flat()) n += key.length + Buffer.byteLength(String(value));
  }
  return n;
}

describe("errorToStatus bounds what an error carries", () => {
  test("thousands of violations: the first few are listed, the rest counted, the trailers stay under 4 KiB", () => {
    const violations = Array.from({ length: 2000 }, (_, i) => ({
      field: `statuses[${i}]`,
      description: `unknown value ${"x".repeat(500)} ${i}`,
    }));
    const status = errorToStatus(new InvalidArgumentError(violations), quiet);
    assert.equal(grpc.status[status.code], "INVALID_ARGUMENT");
    assert.ok(status.details.length <= ERROR_LIMITS.messageChars, `message of ${status.details.length} characters`);
    assert.ok(trailerBytes(status) < 4096, `trailers of ${trailerBytes(status)} bytes`);
    assert.ok(status.metadata.get(STATUS_DETAILS_TRAILER).length === 1);
  });

  test("long messages of every kind are cut to the limit", () => {
    const long = "y".repeat(100_000);
    for (const error of [
      new FailedPreconditionError(long, long, long),
      new AlreadyExistsError(long, "ACTIVE_JOB_EXISTS", { job_id: long, other: long }),
      InvalidArgumentError.field(long, long),
    ]) {
      const status = errorToStatus(error, quiet);
      assert.ok(status.details.length <= ERROR_LIMITS.messageChars, error.name);
      assert.ok(trailerBytes(status) < 4096, `${error.name}: trailers of ${trailerBytes(status)} bytes`);
    }
  });
});

for (const dialect of DIALECTS) {
  describe(`bounded errors on a real server (${dialect})`, () => {
    let s: TestServer;
    before(async () => {
      s = await startTestServer({ dialect });
    });
    after(async () => {
      await s?.stop();
    });

    test("ListJobs with 2,000 unknown statuses is INVALID_ARGUMENT at once, and its connection keeps working", async () => {
      const { jobs } = s.as(s.tokens.alice);
      const deadline = () => ({ deadline: Date.now() + 5000 });
      // Both calls share the test client's one HTTP/2 connection.
      const [bad, good] = await Promise.allSettled([
        jobs.listJobs({ statuses: Array.from({ length: 2000 }, () => 99 as JobStatus) }, deadline()),
        jobs.listJobs({ pageSize: 1 }, deadline()),
      ]);
      assert.equal(good.status, "fulfilled");
      assert.equal(bad.status, "rejected");
      const error = await failure(Promise.reject((bad as PromiseRejectedResult).reason));
      assert.equal(grpc.status[error.code], "INVALID_ARGUMENT", error.details);
      assert.ok(error.details.length < 300, error.details);
      assert.match(error.details, /statuses: may name at most 5 statuses .*; got 2000 values/);
      assert.equal(fieldViolationsOf(error).length, 1);
    });

    test("six statuses (one repeated) are refused; five distinct ones are accepted", async () => {
      const { jobs } = s.as(s.tokens.alice);
      const all = [1, 2, 3, 4, 5] as JobStatus[];
      await jobs.listJobs({ statuses: all });
      const error = await failure(jobs.listJobs({ statuses: [...all, 1 as JobStatus] }));
      assert.equal(grpc.status[error.code], "INVALID_ARGUMENT");
    });

    test("a page_token of 60 KiB is INVALID_ARGUMENT, one of a megabyte RESOURCE_EXHAUSTED (ListJobs takes 64 KiB): short messages", async () => {
      const error = await failure(s.as(s.tokens.alice).jobs.listJobs({ pageToken: "A".repeat(60 * 1024) }));
      assert.equal(grpc.status[error.code], "INVALID_ARGUMENT");
      assert.ok(error.details.length < 300);
      const huge = await failure(s.as(s.tokens.alice).jobs.listJobs({ pageToken: "A".repeat(1 << 20) }));
      assert.equal(grpc.status[huge.code], "RESOURCE_EXHAUSTED");
      assert.ok(huge.details.length < 300);
    });
  });
}

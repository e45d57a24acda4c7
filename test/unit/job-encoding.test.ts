// The hand-written job encoder against the generated one: the same bytes for every field and value a job can hold.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { GetJobDetailsResponse, WatchJobResponse } from "../../src/gen/jobwatch/v1/job_service.js";
import type { Estimate } from "../../src/jobs/estimate.js";
import { encodeJobResponse } from "../../src/server/job-encoding.js";
import { jobToProto } from "../../src/server/job-mapper.js";
import type { Job, JobStatus } from "../../src/store/job.js";
import { testJob } from "../helpers/job.js";

/** What ts-proto makes of the job (the reference). */
const generated = (job: Job, estimate: Estimate | undefined): Buffer =>
  Buffer.from(GetJobDetailsResponse.encode({ job: jobToProto(job, estimate) }).finish());

const encoded = (job: Job, estimate: Estimate | undefined): Buffer =>
  encodeJobResponse(job, estimate, () => GetJobDetailsResponse.encode({ job: jobToProto(job, estimate) }).finish());

// Times from 0 (and sub-second ones, nanos only) to year 9999; strings with multi-byte and astral characters.
const time = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 0, max: 999 }),
  fc.integer({ min: 0, max: 253_402_300_799_999 }),
);
const text = fc.oneof(fc.constant(""), fc.string(), fc.string({ unit: "grapheme" }), fc.string({ maxLength: 300 }));
const optional = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | null> => fc.option(a, { nil: null });
const job: fc.Arbitrary<Job> = fc.record({
  jobId: fc.uuid(),
  operationType: text,
  status: fc.constantFrom<JobStatus>("pending", "running", "completed", "failed", "cancelled"),
  username: text,
  resource: optional(text),
  createdAt: time,
  updatedAt: time,
  startedAt: optional(time),
  completedAt: optional(time),
  lastHeartbeatAt: optional(time),
  progress: fc.integer({ min: 0, max: 100 }),
  phase: optional(text),
  detail: optional(fc.string({ maxLength: 2000 })),
  result: fc.oneof(fc.constant(null), fc.constant({ files: 500, nested: { ok: true, list: [1, "two"] } })),
  error: optional(text),
  cancelRequested: fc.boolean(),
  cancelReason: optional(text),
  revision: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
});
const estimate: fc.Arbitrary<Estimate | undefined> = fc.option(
  fc.record({ at: time, basis: fc.constantFrom("progress_rate", "history", "progress_and_history") }),
  { nil: undefined },
);

test("a job is encoded to the same bytes as ts-proto's GetJobDetailsResponse, for any fields", () => {
  fc.assert(
    fc.property(job, estimate, (j, e) => {
      assert.deepEqual(encoded(j, e), generated(j, e));
    }),
    { numRuns: 2000 },
  );
});

test("the bytes decode as a WatchJobResponse carrying the same job (field 1 of both responses)", () => {
  const j = testJob({ status: "running", progress: 40, phase: "semantic", detail: "200/500 files", revision: 7 });
  const e: Estimate = { at: 1_900_000_000_123, basis: "progress_rate" };
  assert.deepEqual(WatchJobResponse.decode(encoded(j, e)).job, jobToProto(j, e));
});

test("edge values: varint boundaries, an empty id, a job before 1970 (through the generated encoder)", () => {
  for (const revision of [127, 128, 16_383, 16_384, 2 ** 31, 2 ** 32, 2 ** 35 + 1, Number.MAX_SAFE_INTEGER]) {
    const j = testJob({
      revision,
      createdAt: Math.min(revision, 253_402_300_799_999),
      updatedAt: 2 ** 32 * 1000 + 999,
    });
    assert.deepEqual(encoded(j, undefined), generated(j, undefined), `revision ${revision}`);
  }
  const empty = testJob({ jobId: "", operationType: "", username: "" });
  assert.deepEqual(encoded(empty, undefined), generated(empty, undefined));
  const old = testJob({ createdAt: -1500, updatedAt: -1 });
  assert.deepEqual(encoded(old, undefined), generated(old, undefined));
});

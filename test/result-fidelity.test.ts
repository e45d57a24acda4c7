// CompleteJob stores a result exactly as sent or refuses it: never NaN turned into null, never a key dropped.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import * as grpc from "@grpc/grpc-js";
import { CompleteJobResponse } from "../src/gen/jobwatch/v1/job_worker_service.js";
import { DIALECTS } from "./helpers/databases.js";
import type { TestServer } from "./helpers/server.js";
import { failure, fieldViolationsOf, startTestServer } from "./helpers/server.js";

/** A google.protobuf.Value on the wire: a number, a string, or no kind at all. */
type WireValue = { number: number } | { string: string } | { none: true };

/** CompleteJobRequest bytes whose result is a Struct with these entries, in order, as a client in any language may send them. */
function completeJobBytes(jobId: string, entries: [string, WireValue][]): Buffer {
  const w = new BinaryWriter();
  w.uint32(10).string(jobId);
  w.uint32(18).fork();
  for (const [key, value] of entries) {
    w.uint32(10).fork();
    w.uint32(10).string(key);
    w.uint32(18).fork();
    if ("number" in value) w.uint32(17).double(value.number);
    else if ("string" in value) w.uint32(26).string(value.string);
    w.join();
    w.join();
  }
  w.join();
  return Buffer.from(w.finish());
}

function completeRaw(s: TestServer, bytes: Buffer): Promise<CompleteJobResponse> {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${s.tokens.worker}`);
  return new Promise((resolve, reject) => {
    s.workerClient.makeUnaryRequest(
      "/jobwatch.v1.JobWorkerService/CompleteJob",
      (body: Buffer) => body,
      (b: Buffer) => CompleteJobResponse.decode(b),
      bytes,
      metadata,
      (error, response) => (error ? reject(error) : resolve(response!)),
    );
  });
}

for (const dialect of DIALECTS) {
  describe(`CompleteJob results (${dialect})`, () => {
    let s: TestServer;
    before(async () => {
      s = await startTestServer({ dialect });
    });
    after(async () => {
      await s?.stop();
    });
    const worker = () => s.as(s.tokens.worker).worker;
    const newJob = async (): Promise<string> => {
      const { job } = await worker().createJob({ operationType: "add_golden_repo", username: "alice" });
      return job!.jobId;
    };
    /** Asserts the job is still PENDING at revision 1: the refused call changed nothing. */
    const unchanged = async (jobId: string): Promise<void> => {
      const { job } = await s.as(s.tokens.alice).jobs.getJobDetails({ jobId });
      assert.equal(job!.revision, 1);
      assert.equal(job!.result, undefined);
    };

    test("NaN, Infinity and -0 are INVALID_ARGUMENT naming where they are; the job is unchanged", async () => {
      for (const [result, field] of [
        [{ files: Number.NaN }, "result.files"],
        [{ stats: { rate: Number.POSITIVE_INFINITY } }, "result.stats.rate"],
        [{ list: [1, Number.NEGATIVE_INFINITY] }, "result.list[1]"],
        // -0 would read back as 0: refused too, never changed.
        [{ delta: -0 }, "result.delta"],
      ] as const) {
        const jobId = await newJob();
        const error = await failure(worker().completeJob({ jobId, result }));
        assert.equal(grpc.status[error.code], "INVALID_ARGUMENT", error.details);
        const violation = fieldViolationsOf(error).find((v) => v.field === field);
        assert.ok(violation, JSON.stringify(fieldViolationsOf(error)));
        assert.match(violation.description, /JSON cannot hold/);
        await unchanged(jobId);
      }
    });

    test("a '__proto__' key is INVALID_ARGUMENT, not silently dropped", async () => {
      const jobId = await newJob();
      const error = await failure(
        completeRaw(
          s,
          completeJobBytes(jobId, [
            ["__proto__", { number: 1 }],
            ["ok", { string: "x" }],
          ]),
        ),
      );
      assert.equal(grpc.status[error.code], "INVALID_ARGUMENT", error.details);
      assert.deepEqual(
        fieldViolationsOf(error).map((v) => v.field),
        ["result.__proto__"],
      );
      await unchanged(jobId);
    });

    test("a Value with no kind set is INVALID_ARGUMENT, not silently dropped", async () => {
      const jobId = await newJob();
      const error = await failure(completeRaw(s, completeJobBytes(jobId, [["empty", { none: true }]])));
      assert.equal(grpc.status[error.code], "INVALID_ARGUMENT", error.details);
      await unchanged(jobId);
    });

    test("everything JSON holds comes back exactly as sent, from CompleteJob and from GetJobDetails", async () => {
      const result = {
        "": "empty key",
        constructor: "c",
        toString: 1,
        hasOwnProperty: { valueOf: [] },
        big: 9007199254740991,
        tiny: 5e-324,
        nested: { list: [null, true, false, "ü😀", [[]], {}] },
        text: "line\nnext\ttab",
      };
      const jobId = await newJob();
      const { job } = await worker().completeJob({ jobId, result });
      assert.deepEqual(job!.result, result);
      const read = await s.as(s.tokens.alice).jobs.getJobDetails({ jobId });
      assert.deepEqual(read.job!.result, result);
      // Sent as raw bytes too, keys in this order.
      const raw = await newJob();
      const response = await completeRaw(
        s,
        completeJobBytes(raw, [
          ["b", { number: 2 }],
          ["a", { string: "x" }],
        ]),
      );
      assert.deepEqual(Object.entries(response.job!.result!), [
        ["b", 2],
        ["a", "x"],
      ]);
    });
  });
}

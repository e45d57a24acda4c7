// Request bodies jobwatch cannot read as sent are the caller's error: INVALID_ARGUMENT naming the field and
// the limit, never grpc-js's INTERNAL "Error deserializing request" (int64 past 2^53-1, a result nested too
// deep, bytes that are not the message).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import * as grpc from "@grpc/grpc-js";
import { CompleteJobRequest } from "../src/gen/jobwatch/v1/job_worker_service.js";
import { DIALECTS } from "./helpers/databases.js";
import type { RawOutcome } from "./helpers/raw.js";
import { rawCall, rawClient, rawUnary } from "./helpers/raw.js";
import type { TestServer } from "./helpers/server.js";
import { fieldViolationsOf, richStatusOf, startTestServer } from "./helpers/server.js";

const TWO_60 = 2n ** 60n;
const LIMIT_TEXT = "between -9007199254740991 and 9007199254740991 (2^53-1)";

/** A JSON object nested `depth` levels deep ({"a": {"a": ... 1}}), or arrays when `arrays`. */
function nested(depth: number, arrays = false): { [key: string]: unknown } {
  let value: unknown = 1;
  for (let i = 1; i < depth; i++) value = arrays ? [value] : { a: value };
  return { a: value };
}

/** The field violations of a raw call's error, as [field, description] pairs. */
function violations(outcome: RawOutcome): [string, string][] {
  assert.ok(outcome.error, `expected an error, got ${grpc.status[outcome.code]}`);
  return fieldViolationsOf(outcome.error).map((v) => [v.field, v.description]);
}

for (const dialect of DIALECTS) {
  describe(`undecodable requests are INVALID_ARGUMENT (${dialect})`, () => {
    let s: TestServer;
    let client: grpc.Client;
    before(async () => {
      s = await startTestServer({ dialect });
      client = rawClient(s);
    });
    after(async () => {
      client?.close();
      await s?.stop();
    });

    const watchBytes = (afterRevision: bigint): Buffer =>
      Buffer.from(new BinaryWriter().uint32(10).string(randomUUID()).uint32(16).int64(afterRevision).finish());

    test("WatchJob after_revision = 2^60 names after_revision and the range", async () => {
      const outcome = await rawCall(
        client,
        "/jobwatch.v1.JobService/WatchJob",
        { requestStream: false, responseStream: true },
        watchBytes(TWO_60),
        s.tokens.alice,
      );
      assert.equal(outcome.code, grpc.status.INVALID_ARGUMENT, outcome.details);
      assert.equal(
        outcome.details,
        `after_revision: 1152921504606846976 is out of range: 64-bit integers must be ${LIMIT_TEXT}`,
      );
      assert.deepEqual(
        violations(outcome).map(([field]) => field),
        ["after_revision"],
      );
    });

    test("the largest safe after_revision decodes (and the job is simply not found)", async () => {
      const outcome = await rawCall(
        client,
        "/jobwatch.v1.JobService/WatchJob",
        { requestStream: false, responseStream: true },
        watchBytes(BigInt(Number.MAX_SAFE_INTEGER)),
        s.tokens.alice,
      );
      assert.equal(outcome.code, grpc.status.NOT_FOUND, outcome.details);
    });

    test("a negative int64 below -(2^53-1) and a nested timestamp's seconds are named with their path", async () => {
      const w = new BinaryWriter();
      w.uint32(26).fork().uint32(8).int64(-TWO_60).join(); // created_after.seconds
      w.uint32(34).fork().uint32(8).int64(TWO_60).join(); // created_before.seconds
      const outcome = await rawUnary(
        client,
        "/jobwatch.v1.JobService/ListJobs",
        Buffer.from(w.finish()),
        s.tokens.alice,
      );
      assert.equal(outcome.code, grpc.status.INVALID_ARGUMENT, outcome.details);
      assert.deepEqual(
        violations(outcome).map(([field]) => field),
        ["created_after.seconds", "created_before.seconds"],
      );
      assert.ok(violations(outcome).every(([, description]) => description.includes(LIMIT_TEXT)));
    });

    describe("CompleteJob result nesting", () => {
      const complete = async (result: { [key: string]: unknown }): Promise<RawOutcome> => {
        const { worker } = s.as(s.tokens.worker);
        const { job } = await worker.createJob({ operationType: "nesting", username: "alice", resource: randomUUID() });
        await worker.startJob({ jobId: job?.jobId ?? "" });
        const body = Buffer.from(CompleteJobRequest.encode({ jobId: job?.jobId ?? "", result }).finish());
        return rawUnary(client, "/jobwatch.v1.JobWorkerService/CompleteJob", body, s.tokens.worker);
      };

      test("32 levels of objects or arrays are stored", async () => {
        assert.equal((await complete(nested(32))).code, grpc.status.OK);
        assert.equal((await complete(nested(32, true))).code, grpc.status.OK);
      });

      // 33 levels still decode (validation refuses them), 40 do not (the decoder's recursion limit), 200
      // exceed even the diagnosing decoder's limit: the caller reads the same rule each time.
      for (const [depth, arrays] of [
        [33, false],
        [33, true],
        [40, false],
        [60, true],
        [200, false],
      ] as const) {
        test(`${depth} levels of ${arrays ? "arrays" : "objects"} are INVALID_ARGUMENT naming result and the limit`, async () => {
          const outcome = await complete(nested(depth, arrays));
          assert.equal(outcome.code, grpc.status.INVALID_ARGUMENT, outcome.details);
          const [[field, description] = ["", ""], ...rest] = violations(outcome);
          assert.equal(field, "result");
          assert.deepEqual(rest, []);
          assert.match(description, /^objects and arrays may nest at most 32 levels deep(; got \d+)?/);
          if (depth <= 40) assert.match(description, new RegExp(`got ${depth}\\b`));
        });
      }
    });

    test("bytes that are not the message: INVALID_ARGUMENT saying so, with an empty BadRequest", async () => {
      // job_id (field 1, length-delimited) claims 80 bytes and 2 follow.
      const outcome = await rawUnary(
        client,
        "/jobwatch.v1.JobService/GetJobDetails",
        Buffer.from([0x0a, 0x50, 1, 2]),
        s.tokens.alice,
      );
      assert.equal(outcome.code, grpc.status.INVALID_ARGUMENT);
      assert.match(
        outcome.details,
        /^the request body is not a valid jobwatch\.v1\.GetJobDetailsRequest message \(.+\)/,
      );
      assert.ok(outcome.error);
      const rich = richStatusOf(outcome.error);
      assert.equal(rich?.details[0]?.typeUrl, "type.googleapis.com/google.rpc.BadRequest");
      assert.deepEqual(fieldViolationsOf(outcome.error), []);
    });

    test("the token is checked before the body: no token, UNAUTHENTICATED", async () => {
      const outcome = await rawCall(
        client,
        "/jobwatch.v1.JobService/WatchJob",
        { requestStream: false, responseStream: true },
        watchBytes(TWO_60),
        undefined,
      );
      assert.equal(outcome.code, grpc.status.UNAUTHENTICATED);
    });

    test("health and reflection refuse undecodable bodies the same way", async () => {
      const health = await rawUnary(client, "/grpc.health.v1.Health/Check", Buffer.from([0x0a, 0x7f]));
      assert.equal(health.code, grpc.status.INVALID_ARGUMENT);
      assert.match(health.details, /not a valid grpc\.health\.v1\.HealthCheckRequest message/);
      const reflection = await rawCall(
        client,
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        { requestStream: true, responseStream: true },
        Buffer.from([0x22, 0x7f]),
        undefined,
      );
      assert.equal(reflection.code, grpc.status.INVALID_ARGUMENT);
      assert.match(reflection.details, /not a valid grpc\.reflection\.v1\.ServerReflectionRequest message/);
    });
  });
}

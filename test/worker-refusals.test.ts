// What a worker reads when a transition is refused: the store's refusal plus the rpc that would have helped.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { DIALECTS } from "./helpers/databases.js";
import type { TestServer } from "./helpers/server.js";
import { failure, preconditionFailureOf, startTestServer } from "./helpers/server.js";

for (const dialect of DIALECTS) {
  describe(`worker refusals on ${dialect}`, () => {
    let s: TestServer;
    before(async () => {
      s = await startTestServer({ dialect });
    });
    after(() => s.stop());

    /** The message of a FAILED_PRECONDITION call, checked to be the PreconditionFailure's description too. */
    async function refusal(call: Promise<unknown>, jobId: string): Promise<string> {
      const error = await failure(call);
      assert.equal(grpc.status[error.code], "FAILED_PRECONDITION", error.details);
      const violation = preconditionFailureOf(error)?.violations[0];
      assert.deepEqual([violation?.type, violation?.subject, violation?.description], ["STATUS", jobId, error.details]);
      return error.details;
    }

    test("progress and heartbeats on a PENDING job say to call StartJob first", async () => {
      const worker = s.as(s.tokens.worker).worker;
      const { job } = await worker.createJob({ operationType: "index_repo", username: "alice" });
      const jobId = job!.jobId;
      assert.equal(
        await refusal(worker.reportProgress({ jobId, progress: 5 }), jobId),
        "cannot report progress on a job in PENDING status; call StartJob first",
      );
      assert.equal(
        await refusal(worker.heartbeat({ jobId }), jobId),
        "cannot record a heartbeat for a job in PENDING status; call StartJob first",
      );
      // A finished job needs no advice: nothing will make the call legal.
      await worker.failJob({ jobId, error: "gave up" });
      assert.equal(
        await refusal(worker.heartbeat({ jobId }), jobId),
        "cannot record a heartbeat for a job in FAILED status; the job has already finished",
      );
    });

    test("MarkCancelled without a request names who can request one, not an rpc the worker cannot call", async () => {
      const worker = s.as(s.tokens.worker).worker;
      const pending = (await worker.createJob({ operationType: "index_repo", username: "alice" })).job!.jobId;
      assert.equal(
        await refusal(worker.markCancelled({ jobId: pending }), pending),
        "cannot mark a job in PENDING status as cancelled; no cancellation was requested: only a RUNNING job whose " +
          "cancellation was requested (CancelJob by its owner or an admin) can be marked cancelled",
      );
      await worker.startJob({ jobId: pending });
      assert.equal(
        await refusal(worker.markCancelled({ jobId: pending }), pending),
        "cannot mark a job in RUNNING status as cancelled; no cancellation was requested: only a job whose " +
          "cancellation was requested (CancelJob by its owner or an admin) can be marked cancelled",
      );
    });
  });
}

// Another user's job is refused before its large columns are read or decoded, so it answers exactly like
// a missing id (and as fast). Shown here by a job whose stored result cannot be decoded at all: the owner's
// reader would fail on it, the other user never gets that far.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { DIALECTS } from "./helpers/databases.js";
import type { TestServer } from "./helpers/server.js";
import { failure, startTestServer } from "./helpers/server.js";

for (const dialect of DIALECTS) {
  describe(`another user's job (${dialect})`, () => {
    let s: TestServer;
    before(async () => {
      s = await startTestServer({ dialect });
    });
    after(async () => {
      await s?.stop();
    });

    test("answers NOT_FOUND like a missing id on every rpc, without decoding its result", async () => {
      const worker = s.as(s.tokens.worker).worker;
      const { job } = await worker.createJob({ operationType: "big", username: "bob" });
      const jobId = job!.jobId;
      await worker.completeJob({ jobId, result: { ok: true } });
      // A result no reader can decode: whoever decodes it fails.
      await s.store.db.updateTable("jobs").set({ result: "{not json" }).where("job_id", "=", jobId).execute();
      const admin = await failure(s.as(s.tokens.admin).jobs.getJobDetails({ jobId }));
      assert.equal(grpc.status[admin.code], "INTERNAL", "the admin's read decodes it");

      const missing = randomUUID();
      const alice = s.as(s.tokens.alice).jobs;
      for (const [name, call] of [
        ["GetJobDetails", (id: string) => alice.getJobDetails({ jobId: id })],
        ["CancelJob", (id: string) => alice.cancelJob({ jobId: id })],
        ["GetJobHistory", (id: string) => alice.getJobHistory({ jobId: id })],
      ] as const) {
        const hidden = await failure(call(jobId));
        const none = await failure(call(missing));
        assert.equal(grpc.status[hidden.code], "NOT_FOUND", `${name}: ${hidden.details}`);
        assert.equal(hidden.details, none.details.replace(missing, jobId), name);
      }
      const watch = s.watch(s.tokens.alice, { jobId });
      const end = await watch.done;
      assert.equal(grpc.status[end.code], "NOT_FOUND", end.details);
      assert.equal(watch.jobs.length, 0);
    });
  });
}

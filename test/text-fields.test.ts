// Free text and names as the API accepts them: no control characters that could drive a reader's
// terminal, and names that compare exactly on both databases (no "alice   " passing for "alice").
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { ServiceError } from "@grpc/grpc-js";
import * as grpc from "@grpc/grpc-js";
import { DIALECTS } from "./helpers/databases.js";
import type { TestServer } from "./helpers/server.js";
import { failure, fieldViolationsOf, startTestServer } from "./helpers/server.js";

/** Asserts INVALID_ARGUMENT with a violation of `field` and returns its description. */
async function refused(call: Promise<unknown>, field: string): Promise<string> {
  const error: ServiceError = await failure(call);
  assert.equal(grpc.status[error.code], "INVALID_ARGUMENT", error.details);
  const found = fieldViolationsOf(error).find((v) => v.field === field);
  assert.ok(found, `expected a violation of ${field}; got ${JSON.stringify(fieldViolationsOf(error))}`);
  return found.description;
}

// OSC 52 (set the clipboard), a CSI colour, a C1 CSI (U+009B), DEL and a NUL.
const HOSTILE = ["\u001b]52;c;ZWNobyBwd25lZA==\u0007", "\u001b[31mred", "x\u009b2J", "a\u007fb", "a\u0000b"];

for (const dialect of DIALECTS) {
  describe(`text fields (${dialect})`, () => {
    let s: TestServer;
    before(async () => {
      s = await startTestServer({ dialect });
    });
    after(async () => {
      await s?.stop();
    });
    const worker = () => s.as(s.tokens.worker).worker;
    let n = 0;
    const running = async (username = "alice") => {
      const { job } = await worker().createJob({ operationType: "add_golden_repo", username, resource: `r${n++}` });
      await worker().startJob({ jobId: job!.jobId });
      return job!.jobId;
    };

    test("control characters in phase, detail, error and a cancel reason are INVALID_ARGUMENT naming the field", async () => {
      const jobId = await running();
      for (const text of HOSTILE) {
        assert.match(
          await refused(worker().reportProgress({ jobId, progress: 1, phase: text }), "phase"),
          /must not contain control characters; got U\+00[0-9A-F]{2} at character \d+/,
        );
        assert.match(
          await refused(worker().reportProgress({ jobId, progress: 1, detail: text }), "detail"),
          /must not contain control characters other than newline and tab; got U\+/,
        );
        await refused(worker().failJob({ jobId, error: text }), "error");
        await refused(s.as(s.tokens.alice).jobs.cancelJob({ jobId, reason: text }), "reason");
      }
      // Nothing of it was stored.
      const { job } = await s.as(s.tokens.alice).jobs.getJobDetails({ jobId });
      assert.equal(job!.revision, 2);
      assert.equal(job!.cancelRequested, false);
    });

    test("newline and tab stay allowed where text may span lines, and arrive unchanged", async () => {
      const jobId = await running();
      const detail = "files:\t150/500\nsymbols:\t20";
      await worker().reportProgress({ jobId, progress: 30, phase: "semantic", detail });
      await s.as(s.tokens.alice).jobs.cancelJob({ jobId, reason: "wrong repo\nplease re-run\t(sorry)" });
      const { job } = await worker().failJob({ jobId, error: "stack:\n\tat index.ts:1" });
      assert.equal(job!.detail, detail);
      assert.equal(job!.cancelReason, "wrong repo\nplease re-run\t(sorry)");
      assert.equal(job!.error, "stack:\n\tat index.ts:1");
      await refused(worker().reportProgress({ jobId: await running(), progress: 1, phase: "a\nb" }), "phase");
    });

    test("a username or resource with leading or trailing whitespace is INVALID_ARGUMENT", async () => {
      for (const username of ["alice   ", " alice", "alice\u00a0"]) {
        assert.match(
          await refused(worker().createJob({ operationType: "op", username }), "username"),
          /must not start or end with whitespace/,
        );
      }
      await refused(worker().createJob({ operationType: "op", username: "alice", resource: "repo " }), "resource");
    });

    test("names compare exactly: jobs of user 'alice   ' (stored before the API refused it) are not alice's", async () => {
      const { jobs } = s.as(s.tokens.alice);
      const padded = await s.store.createJob({ operationType: "padded_op", username: "alice   " });
      const own = await s.store.createJob({ operationType: "padded_op", username: "alice" });
      const listed = await jobs.listJobs({ operationType: "padded_op" });
      assert.deepEqual(
        listed.jobs.map((j) => j.jobId),
        [own.jobId],
      );
      const stats = await jobs.getJobStatistics({});
      assert.equal(stats.byOperationType.padded_op, 1);
      const admin = s.as(s.tokens.admin).jobs;
      const byName = await admin.listJobs({ username: "alice", operationType: "padded_op" });
      assert.deepEqual(
        byName.jobs.map((j) => j.jobId),
        [own.jobId],
      );
      const padding = await admin.listJobs({ username: "alice   ", operationType: "padded_op" });
      assert.deepEqual(
        padding.jobs.map((j) => j.jobId),
        [padded.jobId],
      );
    });
  });
}

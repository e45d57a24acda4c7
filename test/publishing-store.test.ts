// The publishing store: every job write reaches the hub once it has committed; reads and failed writes do not.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { FailedPreconditionError } from "../src/errors.js";
import type { Job } from "../src/store/job.js";
import type { JobStore } from "../src/store/store.js";
import { publishingStore } from "../src/watch/publishing-store.js";
import { DIALECTS, freshStore } from "./helpers/databases.js";

for (const dialect of DIALECTS) {
  describe(`publishing store (${dialect})`, () => {
    let raw: JobStore;
    let cleanup: () => Promise<void>;
    const published: Job[] = [];
    let store: JobStore;
    before(async () => {
      ({ store: raw, cleanup } = await freshStore(dialect));
      store = publishingStore(raw, { publish: (job) => published.push(job) });
    });
    after(() => cleanup());

    const revisions = (): string[] => published.map((job) => `${job.status}@${job.revision}`);

    test("each lifecycle write publishes the job it returns, in order, after the write", async () => {
      published.length = 0;
      const created = await store.createJob({ operationType: "add_golden_repo", username: "alice", resource: "r1" });
      assert.deepEqual(published, [created], "published the very object the write returned");
      await store.startJob(created.jobId);
      await store.reportProgress(created.jobId, 40, "semantic", "200/500");
      await store.heartbeat(created.jobId);
      await store.cancelJob(created.jobId, "no longer needed");
      await store.markCancelled(created.jobId);
      assert.deepEqual(revisions(), ["pending@1", "running@2", "running@3", "running@4", "running@5", "cancelled@6"]);
      const second = await store.createJob({ operationType: "add_golden_repo", username: "alice", resource: "r2" });
      await store.startJob(second.jobId);
      const done = await store.completeJob(second.jobId, { files: 1 });
      assert.equal(published.at(-1), done);
      const third = await store.createJob({ operationType: "add_golden_repo", username: "alice", resource: "r3" });
      await store.startJob(third.jobId);
      const failed = await store.failJob(third.jobId, "disk full");
      assert.equal(published.at(-1), failed);
    });

    test("a sweep publishes every job it moved", async () => {
      const a = await store.createJob({ operationType: "add_golden_repo", username: "bob", resource: "s1" });
      const b = await store.createJob({ operationType: "add_golden_repo", username: "bob", resource: "s2" });
      await store.startJob(a.jobId);
      await store.startJob(b.jobId);
      await store.cancelJob(b.jobId);
      published.length = 0;
      const stale = await store.failStaleJobs(Date.now() + 60_000);
      const unconfirmed = await store.cancelUnconfirmed(Date.now() + 60_000);
      assert.ok(stale.length + unconfirmed.length >= 2);
      assert.deepEqual(published, [...stale, ...unconfirmed]);
    });

    test("reads publish nothing; a refused write publishes nothing and throws as before", async () => {
      const job = await store.createJob({ operationType: "add_golden_repo", username: "carol", resource: "q1" });
      await store.startJob(job.jobId);
      published.length = 0;
      await store.getJob(job.jobId);
      await store.listJobs({ limit: 10 });
      await store.getHistory(job.jobId);
      await assert.rejects(store.startJob(job.jobId), FailedPreconditionError);
      assert.deepEqual(published, []);
    });
  });
}

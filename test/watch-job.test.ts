// WatchJob: every status change in order, resume, several watchers, cancel and deadline, slow readers, replicas.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { DIALECTS } from "./helpers/databases.js";
import {
  assertInRevisionOrder,
  COMPLETED,
  FAILED,
  notFound,
  PENDING,
  RUNNING,
  serverSuite,
  transitions,
  violation,
} from "./helpers/rpc.js";
import { startTestServer } from "./helpers/server.js";

for (const dialect of DIALECTS) {
  describe(`jobwatch server (${dialect})`, () => {
    const suite = serverSuite(dialect);
    const { worker, create } = suite;

    describe("WatchJob", () => {
      test("a watcher sees every status change of the lifecycle in order and the stream ends OK", async () => {
        const job = await create("alice");
        const watch = suite.server.watch(suite.server.tokens.alice, { jobId: job.jobId });
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
        const whole = suite.server.watch(suite.server.tokens.alice, { jobId: job.jobId });
        assert.equal(grpc.status[(await whole.done).code], "OK");
        assert.deepEqual(
          whole.jobs.map((j) => [j.status, j.error]),
          [[FAILED, "disk full"]],
        );

        const resumed = suite.server.watch(suite.server.tokens.alice, { jobId: job.jobId, afterRevision: 1 });
        assert.equal(grpc.status[(await resumed.done).code], "OK");
        assert.deepEqual(
          resumed.jobs.map((j) => j.status),
          [RUNNING, FAILED],
        );

        const current = suite.server.watch(suite.server.tokens.alice, { jobId: job.jobId, afterRevision: 3 });
        assert.equal(grpc.status[(await current.done).code], "OK");
        assert.deepEqual(current.jobs, []);
      });

      test("WatchJob errors: bad id, another user's job, unknown job", async () => {
        const bad = await suite.server.watch(suite.server.tokens.alice, { jobId: "nope" }).done;
        assert.equal(grpc.status[bad.code], "INVALID_ARGUMENT");
        violation(bad.error!, "job_id");

        const bobs = await create("bob");
        const other = await suite.server.watch(suite.server.tokens.alice, { jobId: bobs.jobId }).done;
        assert.equal(grpc.status[other.code], "NOT_FOUND");
        assert.equal(other.details, notFound(bobs.jobId));
        const missingId = randomUUID();
        const missing = await suite.server.watch(suite.server.tokens.alice, { jobId: missingId }).done;
        assert.equal(missing.details, notFound(missingId));

        const negative = await suite.server.watch(suite.server.tokens.alice, { jobId: bobs.jobId, afterRevision: -1 })
          .done;
        assert.equal(grpc.status[negative.code], "INVALID_ARGUMENT");
        violation(negative.error!, "after_revision");
      });

      test("several watchers of one job each get every status change and the same final job", async () => {
        const job = await create("alice");
        // Different principals share the hub's changes (and so the encoded messages).
        const watches = [
          ...Array.from({ length: 4 }, () => suite.server.watch(suite.server.tokens.alice, { jobId: job.jobId })),
          suite.server.watch(suite.server.tokens.admin, { jobId: job.jobId }),
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
        const watch = suite.server.watch(suite.server.tokens.alice, { jobId: job.jobId });
        await watch.received(1);
        const before = suite.server.hub.watcherCount;
        assert.ok(before >= 1);
        watch.cancel();
        assert.equal(grpc.status[(await watch.done).code], "CANCELLED");
        // The server learns of the cancel asynchronously; a change to the job must not reach a released watcher.
        while (suite.server.hub.watcherCount >= before) await new Promise((r) => setImmediate(r));
        assert.equal(suite.server.hub.watcherCount, before - 1);
      });

      test("a deadline ends the watch with DEADLINE_EXCEEDED and releases the watcher", async () => {
        const job = await create("alice");
        const before = suite.server.hub.watcherCount;
        const watch = suite.server.watch(
          suite.server.tokens.alice,
          { jobId: job.jobId },
          { deadline: Date.now() + 300 },
        );
        await watch.received(1);
        assert.equal(grpc.status[(await watch.done).code], "DEADLINE_EXCEEDED");
        while (suite.server.hub.watcherCount > before) await new Promise((r) => setImmediate(r));
        assert.equal(suite.server.hub.watcherCount, before);
      });

      test("a watcher that reads nothing while 500 progress reports arrive stays bounded and gets the newest", async () => {
        const job = await create("alice");
        await worker().startJob({ jobId: job.jobId });
        const watch = suite.server.watch(suite.server.tokens.alice, { jobId: job.jobId });
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
          maxBuffered = Math.max(maxBuffered, suite.server.hub.bufferedCount);
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
        const b = await startTestServer({ sharing: suite.server });
        try {
          const job = await create("alice");
          const watch = suite.server.watch(suite.server.tokens.alice, { jobId: job.jobId });
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
  });
}

// The sweepers through the server: stale jobs failed once across replicas, unconfirmed cancels, retention.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import pino from "pino";
import { Sweeper } from "../src/jobs/sweeper.js";
import { DIALECTS } from "./helpers/databases.js";
import { CANCELLED, expectCode, FAILED, notFound, PENDING, RUNNING, serverSuite } from "./helpers/rpc.js";
import { startTestServer } from "./helpers/server.js";

const quiet = pino({ level: "silent" });

for (const dialect of DIALECTS) {
  describe(`jobwatch server (${dialect})`, () => {
    const suite = serverSuite(dialect);
    const { worker, jobsOf, create } = suite;

    describe("sweepers", () => {
      const short = {
        staleAfterMs: 300,
        cancelGraceMs: 300,
        retentionMs: 30 * 24 * 3600_000,
        sweepIntervalMs: 3600_000,
      };

      test("a job whose worker stops reporting is FAILED by exactly one of two replicas, and watchers see it", async () => {
        const r1 = await startTestServer({ sharing: suite.server, sweeper: short });
        const r2 = await startTestServer({ sharing: suite.server, sweeper: short });
        try {
          const job = await create("alice");
          await worker().startJob({ jobId: job.jobId });
          const watch = suite.server.watch(suite.server.tokens.alice, { jobId: job.jobId });
          const end = await watch.done;
          assert.equal(grpc.status[end.code], "OK");
          const last = watch.jobs[watch.jobs.length - 1]!;
          assert.equal(last.status, FAILED);
          assert.match(last.error ?? "", /^worker stopped reporting: no heartbeat since /);
          assert.equal(last.revision, 3);
          const { events } = await jobsOf(suite.server.tokens.alice).getJobHistory({ jobId: job.jobId });
          assert.equal(events.filter((e) => e.status === FAILED).length, 1);
        } finally {
          await r1.stop();
          await r2.stop();
        }
      });

      test("a cancellation the worker never confirms ends CANCELLED with an error saying so", async () => {
        const r1 = await startTestServer({ sharing: suite.server, sweeper: { ...short, staleAfterMs: 3600_000 } });
        try {
          const job = await create("alice");
          await worker().startJob({ jobId: job.jobId });
          const watch = suite.server.watch(suite.server.tokens.alice, { jobId: job.jobId });
          await watch.received(1);
          await jobsOf(suite.server.tokens.alice).cancelJob({ jobId: job.jobId, reason: "stop" });
          const end = await watch.done;
          assert.equal(grpc.status[end.code], "OK");
          const last = watch.jobs[watch.jobs.length - 1]!;
          assert.equal(last.status, CANCELLED);
          assert.match(last.error ?? "", /confirm/);
        } finally {
          await r1.stop();
        }
      });

      test("retention removes finished jobs past the retention period and nothing else", async () => {
        const own = await startTestServer({ dialect });
        try {
          const w = own.as(own.tokens.worker).worker;
          const done = (await w.createJob({ operationType: "x", username: "alice" })).job!;
          await w.completeJob({ jobId: done.jobId });
          const running = (await w.createJob({ operationType: "x", username: "alice" })).job!;
          await w.startJob({ jobId: running.jobId });
          const pending = (await w.createJob({ operationType: "x", username: "alice" })).job!;
          const month = 30 * 24 * 3600_000;
          const sweeper = new Sweeper({
            store: own.store,
            hub: own.hub,
            log: quiet,
            ...short,
            retentionMs: month,
            now: () => Date.now() + month + 60_000,
          });
          assert.equal(await sweeper.sweepRetention(), 1);
          const alice = own.as(own.tokens.alice).jobs;
          const gone = await expectCode(alice.getJobDetails({ jobId: done.jobId }), grpc.status.NOT_FOUND);
          assert.equal(gone.details, notFound(done.jobId));
          await expectCode(alice.getJobHistory({ jobId: done.jobId }), grpc.status.NOT_FOUND);
          assert.equal((await alice.getJobDetails({ jobId: running.jobId })).job?.status, RUNNING);
          assert.equal((await alice.getJobDetails({ jobId: pending.jobId })).job?.status, PENDING);
        } finally {
          await own.stop();
        }
      });
    });
  });
}

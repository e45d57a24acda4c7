// The client library against a real server: reads, typed errors, a watch that survives restarts, the worker helper.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  AlreadyExistsError,
  createClient,
  DeadlineExceededError,
  FailedPreconditionError,
  GrpcStatus,
  InvalidArgumentError,
  type Job,
  JobNotFoundError,
  JobStatus,
  type JobwatchClient,
  PermissionDeniedError,
  statusName,
  UnauthenticatedError,
  UnavailableError,
} from "../src/client/index.js";
import { DIALECTS } from "./helpers/databases.js";
import { startReplica } from "./helpers/replica.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

const { PENDING, COMPLETED, FAILED, CANCELLED } = {
  PENDING: JobStatus.JOB_STATUS_PENDING,
  COMPLETED: JobStatus.JOB_STATUS_COMPLETED,
  FAILED: JobStatus.JOB_STATUS_FAILED,
  CANCELLED: JobStatus.JOB_STATUS_CANCELLED,
};

/** Reads a watch in the background, so the test can act while it runs. */
function collect(iterable: AsyncIterable<Job>): { jobs: Job[]; done: Promise<void>; seen(n: number): Promise<void> } {
  const jobs: Job[] = [];
  const waiters: { n: number; resolve(): void }[] = [];
  const done = (async () => {
    try {
      for await (const job of iterable) {
        jobs.push(job);
        for (const w of waiters.filter((w) => jobs.length >= w.n)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    } finally {
      for (const w of waiters.splice(0)) w.resolve();
    }
  })();
  return {
    jobs,
    done,
    seen: (n) => (jobs.length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
  };
}

/** Asserts revisions strictly increase (no duplicate) and returns the status sequence without repeats. */
function transitions(jobs: Job[]): string[] {
  for (let i = 1; i < jobs.length; i++) {
    assert.ok(
      jobs[i]!.revision > jobs[i - 1]!.revision,
      `revision ${jobs[i]!.revision} after ${jobs[i - 1]!.revision}`,
    );
  }
  const out: string[] = [];
  for (const job of jobs) {
    const name =
      statusName(job.status) + (job.cancelRequested && job.status === JobStatus.JOB_STATUS_RUNNING ? "+cancel" : "");
    if (out[out.length - 1] !== name) out.push(name);
  }
  return out;
}

for (const dialect of DIALECTS) {
  describe(`client library (${dialect})`, () => {
    let server: TestServer;
    let admin: JobwatchClient;
    let alice: JobwatchClient;
    let worker: JobwatchClient;
    const clients: JobwatchClient[] = [];
    const open = (token: string | undefined, address = server.address): JobwatchClient => {
      const client = createClient({ address, token, retry: { maxAttempts: 2 } });
      clients.push(client);
      return client;
    };

    before(async () => {
      server = await startTestServer({ dialect });
      admin = open(server.tokens.admin);
      alice = open(server.tokens.alice);
      worker = open(server.tokens.worker);
    });

    after(async () => {
      for (const client of clients) client.close();
      await server.stop();
    });

    test("getJob returns the job a worker created, as the owner sees it", async () => {
      const created = await worker.worker.createJob({
        operationType: "add_golden_repo",
        username: "alice",
        resource: "r-get",
      });
      const job = await alice.getJob(created.jobId);
      assert.equal(job.jobId, created.jobId);
      assert.equal(job.status, PENDING);
      assert.equal(job.username, "alice");
      assert.equal(job.operationType, "add_golden_repo");
      assert.equal(job.resource, "r-get");
      assert.equal(job.revision, 1);
      assert.ok(job.createdAt instanceof Date);
      await worker.worker.failJob(created.jobId, "cleanup");
    });

    test("errors arrive as typed classes with their gRPC code and details", async () => {
      const invalid = await alice.getJob("not-a-uuid").catch((e: unknown) => e);
      assert.ok(invalid instanceof InvalidArgumentError);
      assert.equal(invalid.code, GrpcStatus.INVALID_ARGUMENT);
      assert.deepEqual(
        invalid.fieldViolations.map((v) => v.field),
        ["job_id"],
      );

      const missing = await alice.getJob("00000000-0000-4000-8000-000000000000").catch((e: unknown) => e);
      assert.ok(missing instanceof JobNotFoundError);
      assert.equal(missing.code, GrpcStatus.NOT_FOUND);
      assert.match(missing.message, /not found/);

      // Another user's job answers exactly like a missing one.
      const bobs = await worker.worker.createJob({ operationType: "op", username: "bob" });
      const hidden = await alice.getJob(bobs.jobId).catch((e: unknown) => e);
      assert.ok(hidden instanceof JobNotFoundError);

      const rejected = await open("jw_not_a_real_token")
        .getJob(bobs.jobId)
        .catch((e: unknown) => e);
      assert.ok(rejected instanceof UnauthenticatedError);
      assert.equal(rejected.code, GrpcStatus.UNAUTHENTICATED);

      const denied = await worker.getJob(bobs.jobId).catch((e: unknown) => e);
      assert.ok(denied instanceof PermissionDeniedError);
      assert.match(denied.message, /query_repos/);

      const early = await worker.worker.reportProgress(bobs.jobId, 10).catch((e: unknown) => e);
      assert.ok(early instanceof FailedPreconditionError);
      assert.match(early.message, /PENDING/);
      assert.equal(early.violations[0]?.type, "STATUS");

      const active = await worker.worker.createJob({ operationType: "op", username: "bob", resource: "dup" });
      const dup = await worker.worker
        .createJob({ operationType: "op", username: "bob", resource: "dup" })
        .catch((e: unknown) => e);
      assert.ok(dup instanceof AlreadyExistsError);
      assert.equal(dup.activeJobId, active.jobId);

      const down = await open(server.tokens.alice, "127.0.0.1:1")
        .getJob(bobs.jobId)
        .catch((e: unknown) => e);
      assert.ok(down instanceof UnavailableError);
      assert.equal(down.code, GrpcStatus.UNAVAILABLE);
    });

    test("a retried createJob with the same request id returns the first job", async () => {
      const input = { operationType: "op", username: "alice", requestId: crypto.randomUUID() };
      const first = await worker.worker.createJob(input);
      const again = await worker.worker.createJob(input);
      assert.equal(again.jobId, first.jobId);
    });

    test("watchJob yields every revision in order and ends after the terminal one", async () => {
      const job = await worker.worker.createJob({ operationType: "op", username: "alice" });
      const watch = collect(alice.watchJob(job.jobId));
      await watch.seen(1);
      await worker.worker.startJob(job.jobId);
      await watch.seen(2);
      await worker.worker.reportProgress(job.jobId, 50, { phase: "semantic", detail: "250/500 files indexed" });
      await watch.seen(3);
      await worker.worker.completeJob(job.jobId, { files: 500 });
      await watch.done;
      assert.deepEqual(transitions(watch.jobs), ["PENDING", "RUNNING", "COMPLETED"]);
      assert.deepEqual(
        watch.jobs.map((j) => j.revision),
        [1, 2, 3, 4],
      );
      assert.equal(watch.jobs[2]!.phase, "semantic");
      assert.deepEqual(watch.jobs.at(-1)!.result, { files: 500 });
    });

    test("watchJob with afterRevision skips what was already seen", async () => {
      const job = await worker.worker.createJob({ operationType: "op", username: "alice" });
      await worker.worker.startJob(job.jobId);
      await worker.worker.reportProgress(job.jobId, 30);
      const watch = collect(alice.watchJob(job.jobId, { afterRevision: 2 }));
      await watch.seen(1);
      await worker.worker.completeJob(job.jobId);
      await watch.done;
      assert.ok(watch.jobs.every((j) => j.revision > 2));
      assert.equal(watch.jobs.at(-1)!.status, COMPLETED);
    });

    test("watchJob with afterRevision at a finished job's final revision returns at once, yielding nothing", async () => {
      const job = await worker.worker.createJob({ operationType: "op", username: "alice" });
      await worker.worker.startJob(job.jobId);
      const completed = await worker.worker.completeJob(job.jobId, { files: 1 });
      assert.equal(completed.status, COMPLETED);
      // A reconnect would mean the client took the server's clean end for a dropped stream: fail instead.
      const retries: unknown[] = [];
      const watch = collect(
        alice.watchJob(job.jobId, {
          afterRevision: completed.revision,
          onRetry: (e) => {
            retries.push(e.error);
            return false;
          },
        }),
      );
      await watch.done;
      assert.deepEqual(watch.jobs, []);
      assert.deepEqual(retries, []);
    });

    test("waitForJob on a finished job resolves with it", async () => {
      const job = await worker.worker.createJob({ operationType: "op", username: "alice" });
      await worker.worker.startJob(job.jobId);
      const completed = await worker.worker.completeJob(job.jobId, { files: 2 });
      const noRetry = { onRetry: () => false };

      const final = await alice.waitForJob(job.jobId, noRetry);
      assert.equal(final.status, COMPLETED);
      assert.equal(final.revision, completed.revision);
      assert.deepEqual(final.result, { files: 2 });

      // A JavaScript caller may pass afterRevision through to the watch; the final revision is then
      // never streamed, and waitForJob still resolves with the finished job.
      const seen: number[] = [];
      const options = { ...noRetry, afterRevision: completed.revision, onUpdate: (j: Job) => seen.push(j.revision) };
      const again = await alice.waitForJob(job.jobId, options);
      assert.equal(again.status, COMPLETED);
      assert.equal(again.revision, completed.revision);
      assert.deepEqual(seen, [completed.revision]);
    });

    for (const kill of [false, true]) {
      test(`watchJob resumes across a server ${kill ? "kill" : "graceful shutdown"} and restart on the same port and database`, async () => {
        const first = await startReplica(server);
        const port = first.address.split(":")[1]!;
        const watcher = open(server.tokens.alice, first.address);
        const retries: number[] = [];
        const job = await worker.worker.createJob({ operationType: "op", username: "alice" });
        const watch = collect(
          watcher.watchJob(job.jobId, {
            backoff: { initialDelayMs: 20, maxDelayMs: 200 },
            onRetry: (e) => void retries.push(e.lastRevision),
          }),
        );
        await watch.seen(1);
        await worker.worker.startJob(job.jobId);
        await worker.worker.reportProgress(job.jobId, 10);
        await watch.seen(3);

        await first.stop({ kill });
        // While the watched server is down, the job moves on (through another server on the database):
        // a status change, progress, and a cancel request the watcher must not miss.
        await worker.worker.reportProgress(job.jobId, 40, { phase: "semantic" });
        await admin.cancelJob(job.jobId, { reason: "restart test" });
        await worker.worker.reportProgress(job.jobId, 60);

        const second = await startReplica(server, `127.0.0.1:${port}`);
        try {
          await watch.seen(watch.jobs.length + 1);
          await worker.worker.markCancelled(job.jobId);
          await watch.done;
        } finally {
          await second.stop();
        }
        assert.ok(retries.length >= 1, "the watch reconnected");
        assert.deepEqual(transitions(watch.jobs), ["PENDING", "RUNNING", "RUNNING+cancel", "CANCELLED"]);
        const final = watch.jobs.at(-1)!;
        assert.equal(final.status, CANCELLED);
        assert.equal(final.revision, (await alice.getJob(job.jobId)).revision);
      });
    }

    test("watchJob gives up when onRetry says so, and ends on break or abort", async () => {
      const job = await worker.worker.createJob({ operationType: "op", username: "alice" });
      const down = open(server.tokens.alice, "127.0.0.1:1");
      const failed = await collect(down.watchJob(job.jobId, { onRetry: () => false })).done.catch((e: unknown) => e);
      assert.ok(failed instanceof UnavailableError);

      // Leaving the loop early ends the stream; the client goes on working.
      for await (const seen of alice.watchJob(job.jobId)) {
        assert.equal(seen.revision, 1);
        break;
      }
      assert.equal((await alice.getJob(job.jobId)).revision, 1);

      const controller = new AbortController();
      const watch = collect(alice.watchJob(job.jobId, { signal: controller.signal }));
      await watch.seen(1);
      controller.abort();
      await assert.rejects(watch.done, { name: "AbortError" });
      await worker.worker.failJob(job.jobId, "cleanup");
    });

    test("waitForJob resolves with the final job, or fails with DeadlineExceededError on timeout", async () => {
      const job = await worker.worker.createJob({ operationType: "op", username: "alice" });
      const timedOut = await alice.waitForJob(job.jobId, { timeout: 200 }).catch((e: unknown) => e);
      assert.ok(timedOut instanceof DeadlineExceededError);
      assert.match(timedOut.message, /PENDING/);

      const seen: number[] = [];
      const waiting = alice.waitForJob(job.jobId, { onUpdate: (j) => seen.push(j.revision) });
      await worker.worker.startJob(job.jobId);
      await worker.worker.failJob(job.jobId, "disk full");
      const final = await waiting;
      assert.equal(final.status, FAILED);
      assert.equal(final.error, "disk full");
      assert.equal(seen.at(-1), final.revision);
    });

    test("worker.run reports throttled progress and completes the job with the work's result", async () => {
      let created: Job | undefined;
      const final = await worker.worker.run(
        { operationType: "refresh_golden_repo", username: "alice", resource: "run-ok" },
        async (ctx) => {
          for (let i = 1; i <= 50; i++) await ctx.progress(i * 2, { phase: "fts", detail: `${i}/50` });
          return { files: 50 };
        },
        {
          beforeStart: (job) => {
            created = job;
          },
        },
      );
      assert.equal(created?.status, PENDING);
      assert.equal(final.status, COMPLETED);
      assert.deepEqual(final.result, { files: 50 });
      const history = await alice.getHistory(final.jobId);
      // Throttled: far fewer reports than calls, and the last one (100%, 50/50) was sent before completing.
      assert.ok(final.revision < 50, `revision ${final.revision}`);
      assert.equal(history.at(-1)?.status, COMPLETED);
      // A COMPLETED job shows no phase or detail (the contract): the last report is in the history.
      const beforeEnd = history.at(-2);
      assert.equal(beforeEnd?.progress, 100);
      assert.equal(beforeEnd?.detail, "50/50");
    });

    test("worker.run surfaces a cancel request and ends the job CANCELLED", async () => {
      let jobId = "";
      const running = worker.worker.run(
        { operationType: "op", username: "alice" },
        async (ctx) => {
          jobId = ctx.jobId;
          for (let i = 0; ; i++) {
            await ctx.progress(i % 100);
            ctx.throwIfCancelRequested();
            await new Promise((r) => setTimeout(r, 20));
          }
        },
        { progressIntervalMs: 10 },
      );
      while (jobId === "") await new Promise((r) => setTimeout(r, 10));
      await alice.cancelJob(jobId, { reason: "not needed" });
      const final = await running;
      assert.equal(final.status, CANCELLED);
      assert.equal(final.cancelReason, "not needed");
    });

    test("worker.run fails the job with the work's error and rethrows it", async () => {
      let jobId = "";
      const boom = new Error("index corrupted");
      const thrown = await worker.worker
        .run({ operationType: "op", username: "alice" }, async (ctx) => {
          jobId = ctx.jobId;
          await ctx.progress(30, { phase: "semantic" });
          throw boom;
        })
        .catch((e: unknown) => e);
      assert.equal(thrown, boom);
      const job = await alice.getJob(jobId);
      assert.equal(job.status, FAILED);
      assert.equal(job.error, "index corrupted");
      assert.equal(job.phase, "semantic");
    });

    test("listJobs, listAllJobs, getStatistics, cancelJob and getHistory", async () => {
      const bobClient = open(server.tokens.bob);
      const made: string[] = [];
      for (let i = 0; i < 3; i++)
        made.push((await worker.worker.createJob({ operationType: "list_op", username: "bob" })).jobId);
      const page = await bobClient.listJobs({ operationType: "list_op", pageSize: 2 });
      assert.equal(page.jobs.length, 2);
      assert.ok(page.nextPageToken);
      const all: string[] = [];
      for await (const job of bobClient.listAllJobs({ operationType: "list_op", pageSize: 2 })) all.push(job.jobId);
      assert.deepEqual([...all].sort(), [...made].sort());

      const cancelled = await bobClient.cancelJob(made[0]!);
      assert.equal(cancelled.status, CANCELLED);
      const pendingOnly = await bobClient.listJobs({ operationType: "list_op", statuses: [PENDING] });
      assert.equal(pendingOnly.jobs.length, 2);

      const stats = await bobClient.getStatistics();
      assert.equal(stats.byOperationType["list_op"], 3);
      assert.ok(stats.cancelled >= 1);

      const history = await bobClient.getHistory(made[0]!);
      assert.deepEqual(
        history.map((e) => e.status),
        [PENDING, CANCELLED],
      );
      const denied = await bobClient.listJobs({ username: "alice" }).catch((e: unknown) => e);
      assert.ok(denied instanceof PermissionDeniedError);
      for (const id of made.slice(1)) await worker.worker.failJob(id, "cleanup");
    });
  });
}

// WatchJobs against real servers on SQLite and MySQL: snapshot then changes, membership of a status filter,
// permissions, resume with no gap or repeat across replicas and restarts, expired cursors, bookmarks,
// and a reader that does not read.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { createClient, JobStatus, type JobsWatchEvent, type JobwatchClient } from "../src/client/index.js";
import {
  WatchJobRequest,
  type WatchJobResponse,
  WatchJobsEventType,
  WatchJobsRequest,
  type WatchJobsResponse,
} from "../src/gen/jobwatch/v1/job_service.js";
import { encodeCursor, FeedPosition } from "../src/watch/feed-position.js";
import { DIALECTS } from "./helpers/databases.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

/** Pulls events until `stop` says so, with a deadline so a missing event fails the test instead of hanging. */
async function collect(
  events: AsyncGenerator<JobsWatchEvent>,
  stop: (seen: JobsWatchEvent[]) => boolean,
  timeoutMs = 10_000,
): Promise<JobsWatchEvent[]> {
  const seen: JobsWatchEvent[] = [];
  const deadline = Date.now() + timeoutMs;
  while (!stop(seen)) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new Error(`timed out; saw ${seen.map(summary).join(", ")}`);
    let timer: NodeJS.Timeout | undefined;
    const next = await Promise.race([
      events.next(),
      new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), remaining);
      }),
    ]);
    clearTimeout(timer);
    if (next === "timeout") throw new Error(`timed out; saw ${seen.map(summary).join(", ")}`);
    if (next.done) break;
    seen.push(next.value);
  }
  return seen;
}

/** "changed <id-suffix>@<revision> RUNNING" and the like, for comparing sequences. */
function summary(e: JobsWatchEvent): string {
  if (e.type === "synced" || e.type === "reset") return e.type;
  return `${e.type} ${e.job.jobId.slice(-4)}@${e.job.revision} ${JobStatus[e.job.status].replace("JOB_STATUS_", "")}`;
}

for (const dialect of DIALECTS) {
  suite(dialect);
}

function suite(dialect: (typeof DIALECTS)[number]): void {
  describe(`WatchJobs (${dialect})`, () => {
    let s: TestServer;
    const clients: JobwatchClient[] = [];
    const client = (server: TestServer, token: string): JobwatchClient => {
      const c = createClient({ address: server.address, token, retry: { maxAttempts: 1 } });
      clients.push(c);
      return c;
    };
    before(async () => {
      s = await startTestServer({ dialect, pollMs: 20 });
    });
    after(async () => {
      for (const c of clients) c.close();
      await s?.stop();
    });

    const worker = () => s.as(s.tokens.worker).worker;
    const create = async (username: string, operationType = "add_golden_repo") =>
      (await worker().createJob({ operationType, username })).job!;

    test("the jobs that match, synced, then every change; another user's jobs never come", async () => {
      const op = `snap_${dialect}`;
      const mine = await create("alice", op);
      await create("bob", op);
      const stop = new AbortController();
      const events = client(s, s.tokens.alice).watchJobs({ operationType: op }, { signal: stop.signal });
      const start = await collect(events, (seen) => seen.some((e) => e.type === "synced"));
      assert.deepEqual(start.map(summary), [`snapshot ${mine.jobId.slice(-4)}@1 PENDING`, "synced"]);

      await worker().startJob({ jobId: mine.jobId });
      const bobs = await create("bob", op);
      await worker().startJob({ jobId: bobs.jobId });
      await worker().reportProgress({ jobId: mine.jobId, progress: 30 });
      const changes = (await collect(events, (seen) => seen.some((e) => summary(e).endsWith("@3 RUNNING")))).map(
        summary,
      );
      // The start may be coalesced into the progress report after it when both arrive in one poll.
      const id = mine.jobId.slice(-4);
      assert.ok(
        changes.join() === `changed ${id}@3 RUNNING` ||
          changes.join() === `changed ${id}@2 RUNNING,changed ${id}@3 RUNNING`,
        changes.join(", "),
      );
      stop.abort();
    });

    test("a status filter: a job that starts matching is a change, one that leaves is removed", async () => {
      const op = `members_${dialect}`;
      const stop = new AbortController();
      const events = client(s, s.tokens.admin).watchJobs(
        { statuses: [JobStatus.JOB_STATUS_RUNNING], operationType: op, allUsers: true },
        { signal: stop.signal },
      );
      await collect(events, (seen) => seen.some((e) => e.type === "synced"));
      const job = await create("alice", op);
      await worker().startJob({ jobId: job.jobId });
      await worker().reportProgress({ jobId: job.jobId, progress: 50 });
      await worker().completeJob({ jobId: job.jobId });
      const got = await collect(events, (seen) => seen.some((e) => e.type === "removed"));
      const id = job.jobId.slice(-4);
      // The start (revision 2) may be coalesced into the progress report after it (same status) when both
      // arrive in one poll; the RUNNING status itself always comes, then the removal.
      const seen = got.map(summary);
      assert.deepEqual(seen.slice(-2), [`changed ${id}@3 RUNNING`, `removed ${id}@4 COMPLETED`]);
      assert.ok(seen.length === 2 || (seen.length === 3 && seen[0] === `changed ${id}@2 RUNNING`), seen.join(", "));
      stop.abort();
    });

    test("another user's or everyone's jobs need manage_jobs", async () => {
      for (const filter of [{ username: "bob" }, { allUsers: true }]) {
        const events = client(s, s.tokens.alice).watchJobs(filter);
        await assert.rejects(events.next(), (err: { code?: number; message: string }) => {
          assert.equal(err.code, grpc.status.PERMISSION_DENIED);
          assert.match(err.message, /manage_jobs/);
          return true;
        });
      }
    });

    test("resumed on another replica with the last cursor: exactly the changes made meanwhile", async () => {
      const op = `resume_${dialect}`;
      const b = await startTestServer({ sharing: s, pollMs: 20 });
      try {
        const job = await create("alice", op);
        const stop = new AbortController();
        const events = client(s, s.tokens.alice).watchJobs({ operationType: op }, { signal: stop.signal });
        const first = await collect(events, (seen) => seen.some((e) => e.type === "synced"));
        await worker().startJob({ jobId: job.jobId });
        const [started] = await collect(events, (seen) => seen.length >= 1);
        assert.equal(summary(started!), `changed ${job.jobId.slice(-4)}@2 RUNNING`);
        stop.abort();
        assert.ok(first.length === 2);

        // Meanwhile, through the other replica: progress, a new job, completion.
        const bw = b.as(b.tokens.worker).worker;
        await bw.reportProgress({ jobId: job.jobId, progress: 60 });
        const second = (await bw.createJob({ operationType: op, username: "alice" })).job!;
        await bw.completeJob({ jobId: job.jobId });

        const again = new AbortController();
        const resumed = client(b, b.tokens.alice).watchJobs(
          { operationType: op },
          { afterCursor: started!.type === "changed" ? started!.cursor : "", signal: again.signal },
        );
        const got = await collect(resumed, (seen) => seen.length >= 3);
        assert.deepEqual(got.map(summary), [
          `changed ${job.jobId.slice(-4)}@3 RUNNING`,
          `changed ${second.jobId.slice(-4)}@1 PENDING`,
          `changed ${job.jobId.slice(-4)}@4 COMPLETED`,
        ]);
        // Live after the catch-up, nothing repeated.
        await worker().startJob({ jobId: second.jobId });
        assert.deepEqual((await collect(resumed, (seen) => seen.length >= 1)).map(summary), [
          `changed ${second.jobId.slice(-4)}@2 RUNNING`,
        ]);
        again.abort();
      } finally {
        await b.stop();
      }
    });

    test("a change committed through the stream's own server comes at once, not at its next poll, in feed order", async () => {
      const op = `local_${dialect}`;
      // A poll interval no test waits for: only the poll a commit of this server asks for can deliver.
      const w = await startTestServer({ sharing: s, pollMs: 600_000 });
      try {
        const ww = w.as(w.tokens.worker).worker;
        const job = (await ww.createJob({ operationType: op, username: "alice" })).job!;
        const id = job.jobId.slice(-4);
        const stop = new AbortController();
        const events = client(w, w.tokens.alice).watchJobs({ operationType: op }, { signal: stop.signal });
        assert.deepEqual((await collect(events, (seen) => seen.some((e) => e.type === "synced"))).map(summary), [
          `snapshot ${id}@1 PENDING`,
          "synced",
        ]);
        await ww.startJob({ jobId: job.jobId });
        const [started] = await collect(events, (seen) => seen.length >= 1, 5000);
        assert.equal(summary(started!), `changed ${id}@2 RUNNING`);

        // A change through the other replica waits for a poll of this one, which the next commit here
        // brings: both come, in the order of the change feed.
        await worker().reportProgress({ jobId: job.jobId, progress: 40 });
        const second = (await ww.createJob({ operationType: op, username: "alice" })).job!;
        const expected = [`changed ${id}@3 RUNNING`, `changed ${second.jobId.slice(-4)}@1 PENDING`];
        assert.deepEqual((await collect(events, (seen) => seen.length >= 2, 5000)).map(summary), expected);
        stop.abort();

        // The cursor of a change delivered this way resumes on the other replica with exactly what followed.
        const again = new AbortController();
        const resumed = client(s, s.tokens.alice).watchJobs(
          { operationType: op },
          { afterCursor: started!.type === "changed" ? started!.cursor : "", signal: again.signal },
        );
        assert.deepEqual((await collect(resumed, (seen) => seen.length >= 2)).map(summary), expected);
        again.abort();
      } finally {
        await w.stop();
      }
    });

    test("the client library resumes by itself across a server restart", async () => {
      const op = `restart_${dialect}`;
      const a = await startTestServer({ sharing: s, pollMs: 20 });
      const address = a.address;
      const job = await create("alice", op);
      const c = createClient({ address, token: s.tokens.alice, retry: { maxAttempts: 1 } });
      clients.push(c);
      const stop = new AbortController();
      const events = c.watchJobs(
        { operationType: op },
        { signal: stop.signal, backoff: { initialDelayMs: 50, maxDelayMs: 200 } },
      );
      await collect(events, (seen) => seen.some((e) => e.type === "synced"));
      await a.stop();
      await worker().startJob({ jobId: job.jobId });
      await worker().reportProgress({ jobId: job.jobId, progress: 10 });
      const back = await startTestServer({ sharing: s, pollMs: 20, address });
      try {
        const got = await collect(events, (seen) => seen.length >= 2, 20_000);
        assert.deepEqual(got.map(summary), [
          `changed ${job.jobId.slice(-4)}@2 RUNNING`,
          `changed ${job.jobId.slice(-4)}@3 RUNNING`,
        ]);
        stop.abort();
      } finally {
        await back.stop();
      }
    });

    test("an expired cursor is OUT_OF_RANGE; the client library resets and starts from a snapshot", async () => {
      const op = `expired_${dialect}`;
      const job = await create("alice", op);
      const old = encodeCursor(new FeedPosition(1), Date.now() - 60 * 60_000);
      const raw = s.jobClient.watchJobs(
        WatchJobsRequest.fromPartial({ operationType: op, afterCursor: old }),
        bearer(s.tokens.alice),
      );
      const error = await new Promise<grpc.ServiceError>((resolve) => raw.on("error", resolve));
      assert.equal(error.code, grpc.status.OUT_OF_RANGE);
      assert.match(error.details, /start again without a cursor/);

      const stop = new AbortController();
      const events = client(s, s.tokens.alice).watchJobs(
        { operationType: op },
        { afterCursor: old, signal: stop.signal },
      );
      const got = await collect(events, (seen) => seen.some((e) => e.type === "synced"));
      assert.deepEqual(got.map(summary), ["reset", `snapshot ${job.jobId.slice(-4)}@1 PENDING`, "synced"]);
      stop.abort();
    });

    test("an idle stream gets bookmarks, and resuming from one repeats nothing", async () => {
      const quiet = await startTestServer({ sharing: s, pollMs: 20, bookmarkMs: 100 });
      try {
        const op = `bookmark_${dialect}`;
        const job = await create("alice", op);
        const messages = await rawMessages(quiet, s.tokens.alice, { operationType: op }, 3);
        assert.deepEqual(
          messages.map((m) => m.type),
          [
            WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_SNAPSHOT,
            WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_SYNCED,
            WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_BOOKMARK,
          ],
        );
        const bookmark = messages[2]!;
        assert.equal(bookmark.jobs.length, 0);
        await worker().startJob({ jobId: job.jobId });
        const stop = new AbortController();
        const events = client(quiet, s.tokens.alice).watchJobs(
          { operationType: op },
          { afterCursor: bookmark.cursor, signal: stop.signal },
        );
        assert.deepEqual((await collect(events, (seen) => seen.length >= 1)).map(summary), [
          `changed ${job.jobId.slice(-4)}@2 RUNNING`,
        ]);
        stop.abort();
      } finally {
        await quiet.stop();
      }
    });

    test("WatchJob on a quiet job gets a bookmark naming the newest revision sent", async () => {
      const quiet = await startTestServer({ sharing: s, pollMs: 20, bookmarkMs: 100 });
      try {
        const job = await create("alice", `quiet_${dialect}`);
        const stream = quiet.jobClient.watchJob(
          WatchJobRequest.fromPartial({ jobId: job.jobId }),
          bearer(s.tokens.alice),
        );
        const got: WatchJobResponse[] = [];
        await new Promise<void>((resolve, reject) => {
          stream.on("data", (m: WatchJobResponse) => {
            got.push(m);
            if (got.length === 2) resolve();
          });
          stream.on("error", reject);
        });
        stream.on("error", () => undefined);
        stream.cancel();
        assert.equal(got[0]?.job?.revision, 1);
        assert.equal(got[1]?.job, undefined);
        assert.equal(got[1]?.bookmarkRevision, 1);
      } finally {
        await quiet.stop();
      }
    });

    test("a reader that does not read is ended with RESOURCE_EXHAUSTED; the server holds a bounded queue", async () => {
      const small = await startTestServer({ sharing: s, pollMs: 20, maxQueuedChanges: 20 });
      try {
        const op = `slow_${dialect}`;
        const stream = small.jobClient.watchJobs(
          WatchJobsRequest.fromPartial({ operationType: op, username: "carol" }),
          bearer(s.tokens.admin),
        );
        const ended = new Promise<grpc.ServiceError>((resolve) => stream.on("error", resolve));
        await new Promise<void>((resolve) => stream.once("data", () => resolve())); // synced
        stream.pause();
        // Enough distinct jobs to fill the transport's buffers and then the stream's queue.
        for (let i = 0; i < 600; i++) await create("carol", op);
        stream.resume();
        stream.on("data", () => undefined);
        const error = await ended;
        assert.equal(error.code, grpc.status.RESOURCE_EXHAUSTED);
        assert.match(error.details, /fell more than 20 changes behind/);
        assert.equal(small.hub.jobsStreamCount, 0);
      } finally {
        await small.stop();
      }
    });
  });
}

function bearer(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
}

/** The first `n` raw messages of a WatchJobs stream. */
function rawMessages(
  server: TestServer,
  token: string,
  request: Partial<WatchJobsRequest>,
  n: number,
): Promise<WatchJobsResponse[]> {
  const stream = server.jobClient.watchJobs(WatchJobsRequest.fromPartial(request), bearer(token));
  const got: WatchJobsResponse[] = [];
  return new Promise((resolve, reject) => {
    stream.on("data", (m: WatchJobsResponse) => {
      got.push(m);
      if (got.length === n) {
        stream.cancel();
        resolve(got);
      }
    });
    stream.on("error", (e: grpc.ServiceError) => {
      if (e.code !== grpc.status.CANCELLED) reject(e);
    });
  });
}

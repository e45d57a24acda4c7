// WatchJobs' core without a database: feed positions and cursors, what a change means to a filter, and the
// streams (snapshot, changes, resume with no gap or repeat, expiry, bookmarks, slow readers, other users).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  OutOfRangeError,
  ResourceExhaustedError,
} from "../../src/errors.js";
import type { Job, JobStatus } from "../../src/store/job.js";
import type { FeedEntry, ListJobsQuery } from "../../src/store/store.js";
import { decodeCursor, encodeCursor, FeedPosition } from "../../src/watch/feed-position.js";
import type { JobsFilter } from "../../src/watch/jobs-filter.js";
import { classifyChange } from "../../src/watch/jobs-filter.js";
import type { JobsEvent } from "../../src/watch/jobs-watch.js";
import { JobsWatches, MAX_QUEUED_CHANGES, MAX_SNAPSHOT_JOBS } from "../../src/watch/jobs-watch.js";
import { testJob } from "../helpers/job.js";

const T0 = 1_700_000_000_000;

function job(id: number, over: Partial<Job> = {}): Job {
  return testJob({
    jobId: `00000000-0000-4000-8000-${String(id).padStart(12, "0")}`,
    createdAt: T0 + id,
    updatedAt: T0 + id,
    ...over,
  });
}

/** The next revision of a job, as the store would write it at `at`. */
function next(j: Job, at: number, change: Partial<Job>): Job {
  const moved: Partial<Job> = {};
  if (change.status === "running") moved.startedAt = at;
  if (change.status && ["completed", "failed", "cancelled"].includes(change.status)) moved.completedAt = at;
  return { ...j, ...moved, ...change, revision: j.revision + 1, updatedAt: at };
}

/** An in-memory store: the jobs table and the job_events feed. */
class FakeStore {
  jobs = new Map<string, Job>();
  feed: (FeedEntry & { job: Job })[] = [];
  feedReads = 0;

  write(j: Job, seq?: number): FeedEntry & { job: Job } {
    this.jobs.set(j.jobId, j);
    const entry = { seq: seq ?? (this.feed.at(-1)?.seq ?? 0) + 1, jobId: j.jobId, revision: j.revision, job: j };
    this.feed.push(entry);
    this.feed.sort((a, b) => a.seq - b.seq);
    return entry;
  }
  async listJobs(q: ListJobsQuery): Promise<Job[]> {
    return [...this.jobs.values()]
      .filter(
        (j) =>
          (q.username === undefined || j.username === q.username) &&
          (q.statuses === undefined || q.statuses.includes(j.status)) &&
          (q.operationType === undefined || j.operationType === q.operationType) &&
          (q.resource === undefined || j.resource === q.resource) &&
          (q.createdAfter === undefined || j.createdAt >= q.createdAfter) &&
          (q.after === undefined ||
            j.createdAt < q.after.createdAt ||
            (j.createdAt === q.after.createdAt && j.jobId < q.after.jobId)),
      )
      .sort((a, b) => b.createdAt - a.createdAt || (b.jobId < a.jobId ? -1 : 1))
      .slice(0, q.limit);
  }
  async readFeed(after: number, limit: number): Promise<FeedEntry[]> {
    this.feedReads++;
    return this.feed
      .filter((e) => e.seq > after)
      .slice(0, limit)
      .map(({ seq, jobId, revision }) => ({ seq, jobId, revision }));
  }
  async snapshotsAt(seqs: readonly number[]): Promise<Job[]> {
    return seqs.flatMap((s) => this.feed.filter((e) => e.seq === s).map((e) => e.job));
  }
}

/** A poll: hands the feed entries after `from` to the watches, as the feed poller does. */
function poll(w: JobsWatches, store: FakeStore, from: FeedPosition): FeedPosition {
  const after = from.clone();
  const entries = store.feed.filter((e) => !from.covers(e.seq));
  for (const e of entries) after.add(e.seq);
  w.receive(
    entries.map((e) => ({ seq: e.seq, jobId: e.jobId, revision: e.revision, job: e.job })),
    after,
  );
  return after;
}

const filter = (over: Partial<JobsFilter> = {}): JobsFilter => ({ statuses: new Set(), username: "alice", ...over });

/** Pulls `n` events (bookmarks included) from a stream. */
async function take(events: AsyncGenerator<JobsEvent>, n: number): Promise<JobsEvent[]> {
  const out: JobsEvent[] = [];
  while (out.length < n) {
    const r = await events.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

const summary = (e: JobsEvent): string =>
  "job" in e ? `${e.type} ${e.job.jobId.slice(-2)}@${e.job.revision} ${e.job.status}` : e.type;

function setup(over: { bookmarkMs?: number; now?: () => number } = {}) {
  const store = new FakeStore();
  const w = new JobsWatches({
    store,
    maxCursorAgeMs: 60_000,
    bookmarkMs: over.bookmarkMs ?? 60_000,
    aheadGraceMs: 200,
    now: over.now,
  });
  return { store, w, signal: new AbortController() };
}

describe("FeedPosition and cursors", () => {
  test("seqs seen out of order leave gaps that fill; a cursor round-trips", () => {
    const p = new FeedPosition(3);
    p.add(6);
    assert.deepEqual(p.gaps, [{ from: 4, to: 5 }]);
    assert.equal(p.covers(3), true);
    assert.equal(p.covers(4), false);
    assert.equal(p.low, 3);
    p.add(4);
    assert.deepEqual(p.gaps, [{ from: 5, to: 5 }]);
    const back = decodeCursor(encodeCursor(p, T0), T0 + 1, 60_000);
    assert.deepEqual(back.position, p);
    assert.equal(back.at, T0);
  });

  test("union has seen what either has; includes compares", () => {
    const a = new FeedPosition(10, [{ from: 4, to: 6 }]);
    const b = new FeedPosition(12, [
      { from: 5, to: 5 },
      { from: 9, to: 12 },
    ]);
    const u = a.union(b);
    assert.deepEqual(
      u,
      new FeedPosition(12, [
        { from: 5, to: 5 },
        { from: 11, to: 12 },
      ]),
    );
    assert.equal(u.includes(a), true);
    assert.equal(a.includes(u), false);
  });

  test("a cursor that is not ours is INVALID_ARGUMENT; an old one is OUT_OF_RANGE", () => {
    assert.throws(() => decodeCursor("bm9wZQ", T0, 60_000), InvalidArgumentError);
    assert.throws(() => decodeCursor(encodeCursor(new FeedPosition(5), T0), T0 + 61_000, 60_000), OutOfRangeError);
  });

  test("a cursor stamped in the future cannot outlive the feed: OUT_OF_RANGE beyond a minute of clock skew", () => {
    // Without this check a cursor stamped years ahead never expired, and resumed silently past pruned entries.
    assert.throws(
      () => decodeCursor(encodeCursor(new FeedPosition(5), T0 + 365 * 86_400_000), T0, 60_000),
      (e: unknown) =>
        e instanceof OutOfRangeError && /in the future/.test(e.message) && /without a cursor/.test(e.message),
    );
    // A replica whose clock runs a little ahead still makes usable cursors.
    assert.equal(decodeCursor(encodeCursor(new FeedPosition(5), T0 + 30_000), T0, 60_000).position.high, 5);
  });
});

describe("what a change means to a filter", () => {
  const running = filter({ statuses: new Set<JobStatus>(["running"]) });
  const created = job(1);
  const started = next(created, T0 + 10, { status: "running" });
  const progressed = next(started, T0 + 20, { progress: 50 });
  const done = next(progressed, T0 + 30, { status: "completed", progress: 100 });

  test("entering the statuses is a change, leaving them is one removal, the rest is nothing", () => {
    assert.equal(classifyChange(running, created), undefined);
    assert.equal(classifyChange(running, started), "changed");
    assert.equal(classifyChange(running, progressed), "changed");
    assert.equal(classifyChange(running, done), "removed");
    // A PENDING job cancelled never was RUNNING: nothing to remove.
    assert.equal(classifyChange(running, next(created, T0 + 5, { status: "cancelled" })), undefined);
  });

  test("another user's job never matches a user's filter", () => {
    assert.equal(classifyChange(filter(), { ...started, username: "bob" }), undefined);
    assert.equal(classifyChange(filter({ username: undefined }), { ...started, username: "bob" }), "changed");
  });
});

describe("JobsWatches", () => {
  test("a snapshot, synced, then each change; another user's jobs never come", async () => {
    const { store, w, signal } = setup();
    const a = job(1);
    store.write(a);
    store.write(job(2, { username: "bob" }));
    let pos = poll(w, store, new FeedPosition(0));
    const events = w.watch({ filter: filter(), signal: signal.signal });
    const first = await take(events, 2);
    assert.deepEqual(first.map(summary), ["snapshot", "synced"]);
    assert.deepEqual(
      (first[0] as { jobs: Job[] }).jobs.map((j) => j.jobId),
      [a.jobId],
    );
    const a2 = next(a, T0 + 100, { status: "running" });
    store.write(a2);
    store.write(next(job(2, { username: "bob" }), T0 + 100, { status: "running" }));
    pos = poll(w, store, pos);
    assert.deepEqual((await take(events, 1)).map(summary), ["changed 01@2 running"]);
    signal.abort();
    await assert.rejects(events.next());
    assert.equal(w.streamCount, 0);
  });

  test("a resumed stream gets exactly the changes after its cursor, across out-of-order seqs", async () => {
    const { store, w, signal } = setup();
    const a = job(1);
    const b = job(2);
    store.write(a, 1);
    let pos = poll(w, store, new FeedPosition(0));
    const first = w.watch({ filter: filter(), signal: signal.signal });
    await take(first, 2);
    // Seq 3 commits before seq 2: the poll sees 3 and leaves 2 as a gap.
    const a2 = next(a, T0 + 10, { status: "running" });
    store.write(a2, 3);
    pos = poll(w, store, pos);
    const [changed] = await take(first, 1);
    assert.equal(summary(changed!), "changed 01@2 running");
    const cursor = changed!.cursor;
    signal.abort();
    // While no stream is open, seq 2 commits late and more changes happen.
    store.write(b, 2);
    const a3 = next(a2, T0 + 20, { progress: 40 });
    store.write(a3, 4);
    pos = poll(w, store, pos);
    const again = new AbortController();
    const resumed = w.watch({ filter: filter(), afterCursor: cursor, signal: again.signal });
    const got = await take(resumed, 2);
    assert.deepEqual(got.map(summary), ["changed 02@1 pending", "changed 01@3 running"]);
    // Live again: the next change arrives once.
    store.write(next(a3, T0 + 30, { status: "completed", progress: 100 }), 5);
    pos = poll(w, store, pos);
    assert.deepEqual((await take(resumed, 1)).map(summary), ["changed 01@4 completed"]);
    again.abort();
  });

  test("a cursor older than the feed is kept is OUT_OF_RANGE", async () => {
    let now = T0;
    const { store, w, signal } = setup({ now: () => now });
    store.write(job(1));
    poll(w, store, new FeedPosition(0));
    const events = w.watch({ filter: filter(), signal: signal.signal });
    const [snapshot] = await take(events, 1);
    signal.abort();
    now += 61_000;
    const late = w.watch({ filter: filter(), afterCursor: snapshot!.cursor, signal: new AbortController().signal });
    await assert.rejects(late.next(), OutOfRangeError);
  });

  test("a cursor ahead of the feed is OUT_OF_RANGE unless the poll catches up within the grace", async () => {
    const { store, w } = setup();
    store.write(job(1));
    let pos = poll(w, store, new FeedPosition(0));
    // From another database (or a restored one): seq 999 never comes.
    const foreign = w.watch({
      filter: filter(),
      afterCursor: encodeCursor(new FeedPosition(999), Date.now()),
      signal: new AbortController().signal,
    });
    await assert.rejects(foreign.next(), (err: Error) => err instanceof OutOfRangeError && /ahead/.test(err.message));
    // From a replica one poll ahead: this replica's poll sees seq 2 a moment later.
    const a2 = next(job(1), T0 + 5, { status: "running" });
    const stop = new AbortController();
    const ahead = w.watch({
      filter: filter(),
      afterCursor: encodeCursor(new FeedPosition(2), Date.now()),
      signal: stop.signal,
    });
    const first = ahead.next();
    store.write(a2);
    setTimeout(() => {
      pos = poll(w, store, pos);
    }, 50);
    const a3 = next(a2, T0 + 6, { progress: 5 });
    setTimeout(() => {
      store.write(a3);
      pos = poll(w, store, pos);
    }, 100);
    assert.equal(summary((await first).value as JobsEvent), "changed 01@3 running");
    stop.abort();
  });

  test("an idle stream gets bookmarks whose cursor resumes with nothing repeated", async () => {
    const { store, w, signal } = setup({ bookmarkMs: 20 });
    const a = job(1);
    store.write(a);
    let pos = poll(w, store, new FeedPosition(0));
    const events = w.watch({ filter: filter(), signal: signal.signal });
    await take(events, 2);
    // A change of another user's job moves the feed but not this stream.
    store.write(job(2, { username: "bob" }));
    pos = poll(w, store, pos);
    const [bookmark] = await take(events, 1);
    assert.equal(bookmark?.type, "bookmark");
    signal.abort();
    store.write(next(a, T0 + 5, { status: "running" }));
    pos = poll(w, store, pos);
    const resumed = w.watch({ filter: filter(), afterCursor: bookmark!.cursor, signal: new AbortController().signal });
    assert.deepEqual((await take(resumed, 1)).map(summary), ["changed 01@2 running"]);
  });

  test("a reader that does not read is ended with RESOURCE_EXHAUSTED, holding a bounded queue", async () => {
    const { store, w, signal } = setup();
    let pos = poll(w, store, new FeedPosition(0));
    const events = w.watch({ filter: filter(), signal: signal.signal });
    await take(events, 1); // synced
    // Progress-only changes of one job coalesce; new jobs do not.
    for (let i = 1; i <= MAX_QUEUED_CHANGES + 1; i++) store.write(job(i));
    pos = poll(w, store, pos);
    await assert.rejects(
      (async () => {
        for (;;) await events.next();
      })(),
      ResourceExhaustedError,
    );
    assert.equal(w.streamCount, 0);
  });

  test("progress-only changes of one job coalesce to the newest for a slow reader", async () => {
    const { store, w, signal } = setup();
    let j = next(job(1), T0 + 1, { status: "running" });
    store.write(j);
    let pos = poll(w, store, new FeedPosition(0));
    const events = w.watch({ filter: filter(), signal: signal.signal });
    await take(events, 2);
    for (let p = 1; p <= 50; p++) {
      j = next(j, T0 + 10 + p, { progress: p });
      store.write(j);
    }
    pos = poll(w, store, pos);
    assert.deepEqual((await take(events, 1)).map(summary), [`changed 01@${j.revision} running`]);
  });

  test("more jobs than the snapshot limit is FAILED_PRECONDITION before anything is sent", async () => {
    const { store, w, signal } = setup();
    for (let i = 1; i <= MAX_SNAPSHOT_JOBS + 1; i++) store.jobs.set(job(i).jobId, job(i));
    const events = w.watch({ filter: filter(), signal: signal.signal });
    await assert.rejects(events.next(), FailedPreconditionError);
    assert.equal(w.streamCount, 0);
  });
});

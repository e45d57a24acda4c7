// The feed poll and a WatchJobs stream opened while the poll loads snapshots (found by test/guarantees: a resumed
// stream missed a CreateJob, on MySQL and on Galera, when it registered during that load).
import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import type { Job } from "../../src/store/job.js";
import type { FeedEntry } from "../../src/store/store.js";
import { type FeedPeer, FeedPoller } from "../../src/watch/feed-poller.js";
import { decodeCursor, encodeCursor, FeedPosition } from "../../src/watch/feed-position.js";
import { type JobsEvent, JobsWatches } from "../../src/watch/jobs-watch.js";
import { testJob } from "../helpers/job.js";

/** An in-memory job_events feed whose snapshot query waits until the test lets it answer. */
class GatedStore {
  feed: (FeedEntry & { job: Job })[] = [];
  /** Resolves when the poll is inside snapshotsAt. */
  loading: Promise<void>;
  private entered!: () => void;
  private gate: Promise<void> = Promise.resolve();
  private open!: () => void;

  constructor() {
    this.loading = new Promise((resolve) => (this.entered = resolve));
  }
  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }
  release(): void {
    this.open();
  }
  write(job: Job): void {
    this.feed.push({ seq: this.feed.length + 1, jobId: job.jobId, revision: job.revision, job });
  }
  async latestSeq(): Promise<number> {
    return this.feed.length;
  }
  async readFeed(after: number, limit: number): Promise<FeedEntry[]> {
    return this.feed.filter((e) => e.seq > after).slice(0, limit);
  }
  async readFeedRanges(): Promise<FeedEntry[]> {
    return [];
  }
  async snapshotsAt(seqs: readonly number[]): Promise<Job[]> {
    this.entered();
    await this.gate;
    return this.feed.filter((e) => seqs.includes(e.seq)).map((e) => e.job);
  }
  async listJobs(): Promise<Job[]> {
    return [];
  }
}

test("a WatchJobs stream opened while the poll loads snapshots for another peer gets every change of that batch", async () => {
  // The poll's timer is unref'd (polling must not keep a server alive): this keeps the test's event loop alive.
  const keepAlive = setInterval(() => {}, 1000);
  const store = new GatedStore();
  const poller = new FeedPoller({ store, pollMs: 5, log: pino({ level: "silent" }) });
  const watched = testJob({ jobId: "00000000-0000-4000-8000-00000000000a", username: "bob" });
  const created = testJob({ jobId: "00000000-0000-4000-8000-00000000000b", username: "alice" });
  // A WatchJob watcher of bob's job: the poll loads that entry's snapshot, the await the stream opens during.
  const hub: FeedPeer = {
    openCount: 1,
    startAt: () => {},
    wants: (entry) => entry.jobId === watched.jobId,
    receive: () => {},
    feedLost: () => {},
  };
  const sets = new JobsWatches({ store, maxCursorAgeMs: 60_000, bookmarkMs: 100, aheadGraceMs: 200 });
  poller.add(hub);
  poller.add(sets);
  await poller.start();
  store.hold();
  store.write(watched);
  store.write(created);
  await store.loading;
  // Resumed from a cursor made before both entries (no WatchJobs stream was open when the poll asked who wants them).
  const signal = new AbortController();
  const events = sets.watch({
    filter: { statuses: new Set(), username: "alice" },
    afterCursor: encodeCursor(new FeedPosition(0), Date.now()),
    signal: signal.signal,
  });
  const first = events.next();
  await new Promise((resolve) => setImmediate(resolve));
  store.release();
  try {
    // The first event with a job is alice's; a bookmark before it must not claim the batch (seq 2) as seen.
    for (let next = await first; ; next = await events.next()) {
      assert.equal(next.done, false);
      const event = next.value as JobsEvent;
      if ("job" in event) {
        assert.equal(`${event.type} ${event.job.jobId} r${event.job.revision}`, `changed ${created.jobId} r1`);
        break;
      }
      const seen = decodeCursor(event.cursor, Date.now(), 60_000).position;
      assert.equal(seen.covers(2), false, `a ${event.type} claims alice's CreateJob (seq 2) as sent, and it never was`);
    }
  } finally {
    signal.abort();
    await poller.close();
    clearInterval(keepAlive);
  }
});

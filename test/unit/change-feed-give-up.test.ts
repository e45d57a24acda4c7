// The change feed gives a hole up only after a causal read misses it too: on Galera a node shows another node's
// acknowledged commit only once it has applied it, which under load took longer than the gap timeout.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { FeedEntry, SeqRange } from "../../src/store/store.js";
import { ChangeFeed } from "../../src/watch/change-feed.js";

/** A feed whose `late` entries are committed elsewhere and seen here only by a causal read (wsrep_sync_wait). */
function feedStore() {
  const visible: FeedEntry[] = [];
  const late: FeedEntry[] = [];
  const inRanges = (ranges: readonly SeqRange[]) => (e: FeedEntry) =>
    ranges.some((r) => r.from <= e.seq && e.seq <= r.to);
  const causalReads: number[] = [];
  return {
    visible,
    late,
    causalReads,
    store: {
      latestSeq: async () => 0,
      readFeed: async (afterSeq: number, limit: number) => visible.filter((e) => e.seq > afterSeq).slice(0, limit),
      readFeedRanges: async (ranges: readonly SeqRange[], limit: number, options?: { causal?: boolean }) => {
        if (options?.causal) causalReads.push(ranges.length);
        const rows = options?.causal ? [...visible, ...late] : visible;
        return rows
          .filter(inRanges(ranges))
          .sort((x, y) => x.seq - y.seq)
          .slice(0, limit);
      },
    },
  };
}

async function setUp() {
  let now = 0;
  const f = feedStore();
  let down = false;
  const readFeed = f.store.readFeed;
  f.store.readFeed = async (afterSeq: number, limit: number) => {
    if (down) throw new Error("WSREP has not yet prepared node for application use");
    return readFeed(afterSeq, limit);
  };
  const feed = new ChangeFeed({ store: f.store, gapTimeoutMs: 5000, gapRereadMs: 1000, now: () => now });
  await feed.start();
  const read = async (at: number): Promise<string[]> => {
    now = at;
    const batch = await feed.read();
    batch.commit();
    return batch.entries.map((e) => `${e.jobId}@${e.revision}`);
  };
  /** A read at `at` while the database does not answer: it fails, nothing is committed. */
  const failAt = async (at: number): Promise<void> => {
    now = at;
    down = true;
    await assert.rejects(feed.read(), /WSREP/);
    down = false;
  };
  return { f, feed, read, failAt };
}

test("a job's creation this node applies after the gap timeout is still returned: the last look is causal", async () => {
  const { f, feed, read } = await setUp();
  f.visible.push({ seq: 2, jobId: "b", revision: 1 });
  assert.deepEqual(await read(0), ["b@1"]);
  // Seq 1 (job a's creation) was committed and acknowledged through another node; this one has not applied it.
  f.late.push({ seq: 1, jobId: "a", revision: 1 });
  assert.deepEqual(await read(2000), []);
  assert.deepEqual(f.causalReads, [], "no causal read before a hole is due to be given up");
  assert.deepEqual(await read(5000), ["a@1"]);
  assert.equal(feed.cursor, 2);
});

test("a hole a causal read misses too is given up (a rolled-back insert), after at most one causal read a second", async () => {
  const { f, feed, read } = await setUp();
  f.visible.push({ seq: 2, jobId: "b", revision: 1 });
  assert.deepEqual(await read(0), ["b@1"]);
  f.visible.push({ seq: 4, jobId: "c", revision: 1 });
  assert.deepEqual(await read(600), ["c@1"]);
  assert.deepEqual(await read(5000), []);
  assert.equal(feed.cursor, 2, "seq 1 given up after the causal read; seq 3 not due yet");
  assert.deepEqual(await read(5700), []);
  assert.equal(feed.cursor, 2, "seq 3 is due, but the next causal read is a second after the last");
  assert.deepEqual(await read(6000), []);
  assert.equal(feed.cursor, 4);
  assert.deepEqual(f.causalReads, [1, 1]);
});

test("a hole's time runs only while the feed can read: a transaction stuck through an outage commits after it", async () => {
  const { f, feed, read, failAt } = await setUp();
  f.visible.push({ seq: 2, jobId: "b", revision: 1 });
  assert.deepEqual(await read(0), ["b@1"]);
  // Seq 1's transaction took its seq, then waited out an outage of 8 s (its node out of the primary component).
  for (const at of [1000, 3000, 5000, 7000, 8000]) await failAt(at);
  // The first read after it still waits for seq 1 (before: given up here, past 5 s since the hole was seen) ...
  assert.deepEqual(await read(8500), []);
  assert.equal(feed.cursor, 0);
  // ... and the transaction commits a moment after the outage ended.
  f.visible.push({ seq: 1, jobId: "a", revision: 1 });
  assert.deepEqual(await read(9500), ["a@1"]);
  assert.equal(feed.cursor, 2);
});

test("after an outage a hole that never fills is given up a gap timeout after the reads came back", async () => {
  const { f, feed, read, failAt } = await setUp();
  f.visible.push({ seq: 2, jobId: "b", revision: 1 });
  assert.deepEqual(await read(0), ["b@1"]);
  await failAt(6000);
  assert.deepEqual(await read(7000), []);
  assert.equal(feed.cursor, 0, "kept: its time started again at 7000");
  assert.deepEqual(await read(11_000), []);
  assert.equal(feed.cursor, 0);
  assert.deepEqual(await read(12_000), []);
  assert.equal(feed.cursor, 2, "given up 5 s after the first read that worked");
});

test("past the gap timeout a hole is kept while a writer older than it is open, up to the longest wait", async () => {
  const { f, feed, read } = await setUp();
  let writerMs: number | null | undefined = null;
  Object.assign(f.store, { oldestOpenWriterMs: async () => writerMs });
  f.visible.push({ seq: 2, jobId: "b", revision: 1 });
  assert.deepEqual(await read(0), ["b@1"]);
  // A transaction open since before seq 2 was seen (it took seq 1, then waited for a row lock).
  writerMs = 6500;
  assert.deepEqual(await read(6000), []);
  assert.equal(feed.cursor, 0, "kept: the writer began before the hole was seen");
  writerMs = 20_000;
  assert.deepEqual(await read(19_000), []);
  assert.equal(feed.cursor, 0);
  // A writer that began after the hole was seen cannot hold it.
  writerMs = 2000;
  assert.deepEqual(await read(25_000), []);
  assert.equal(feed.cursor, 2, "given up: no open writer is older than the hole");
});

test("a hole is given up after the longest wait even while an old writer stays open; unknown writers: the gap timeout", async () => {
  const { f, feed, read } = await setUp();
  let writerMs: number | null | undefined = 3_600_000;
  Object.assign(f.store, { oldestOpenWriterMs: async () => writerMs });
  f.visible.push({ seq: 2, jobId: "b", revision: 1 });
  assert.deepEqual(await read(0), ["b@1"]);
  assert.deepEqual(await read(59_000), []);
  assert.equal(feed.cursor, 0);
  assert.deepEqual(await read(60_000), []);
  assert.equal(feed.cursor, 2, "given up at 60 s");
  // Without the PROCESS privilege the open writers are unknown: the hole goes after the gap timeout, as before.
  writerMs = undefined;
  f.visible.push({ seq: 4, jobId: "c", revision: 1 });
  assert.deepEqual(await read(61_000), ["c@1"]);
  assert.deepEqual(await read(66_000), []);
  assert.equal(feed.cursor, 4);
});

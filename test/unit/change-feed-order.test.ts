// The change feed hands out a job's revisions in order even when an earlier one's seq committed late: a new
// entry of a job is returned together with the hole that holds its previous revision, not a second later.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { FeedEntry, SeqRange } from "../../src/store/store.js";
import { ChangeFeed } from "../../src/watch/change-feed.js";

/** A feed whose entries become visible when the test says so, as MySQL commits them. */
function feedStore() {
  const visible: FeedEntry[] = [];
  return {
    show(...entries: FeedEntry[]) {
      visible.push(...entries);
      visible.sort((x, y) => x.seq - y.seq);
    },
    store: {
      latestSeq: async () => 0,
      readFeed: async (afterSeq: number, limit: number) => visible.filter((e) => e.seq > afterSeq).slice(0, limit),
      readFeedRanges: async (ranges: readonly SeqRange[], limit: number) =>
        visible.filter((e) => ranges.some((r) => r.from <= e.seq && e.seq <= r.to)).slice(0, limit),
    },
  };
}

test("a job's next revision comes with the late-committed previous one, in order, not a re-read interval later", async () => {
  let now = 0;
  const f = feedStore();
  const feed = new ChangeFeed({ store: f.store, gapTimeoutMs: 5000, gapRereadMs: 1000, now: () => now });
  await feed.start();
  const read = async (): Promise<string[]> => {
    const batch = await feed.read();
    batch.commit();
    return batch.entries.map((e) => `${e.jobId}@${e.revision}`);
  };
  // Job a's creation took seq 1 but has not committed; job b's change (seq 2) has.
  f.show({ seq: 2, jobId: "b", revision: 1 });
  assert.deepEqual(await read(), ["b@1"]);
  now = 100;
  assert.deepEqual(await read(), [], "the hole was looked at: not again for a second unless something new comes");
  // 200 ms later a's creation has committed, and so has a's next revision (seq 3), written after it.
  now = 200;
  f.show({ seq: 1, jobId: "a", revision: 1 }, { seq: 3, jobId: "a", revision: 2 });
  assert.deepEqual(await read(), ["a@1", "a@2"]);
  now = 400;
  assert.deepEqual(await read(), []);
});

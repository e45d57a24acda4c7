// A WatchJobs cursor carries as many holes as Galera under load leaves (one per write), and a replica accepts what
// another made; past the limit it claims less than was seen (a resume may repeat), never more (it would skip).
import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeCursor, encodeCursor, FeedPosition, MAX_CURSOR_GAPS } from "../../src/watch/feed-position.js";

const T0 = 1_800_000_000_000;

/** Galera's pattern: this node saw every third seq, the two between are holes. */
function galera(holes: number): FeedPosition {
  return new FeedPosition(
    3 * holes + 1,
    Array.from({ length: holes }, (_, i) => ({ from: 3 * i + 2, to: 3 * i + 3 })),
  );
}

test("1,500 holes (more than the 1,000 a cursor once held) go through a cursor exactly", () => {
  const p = galera(1500);
  const back = decodeCursor(encodeCursor(p, T0), T0, 60_000).position;
  assert.deepEqual(back, p);
});

test("more holes than a cursor holds: the oldest merge, so the cursor claims less than was seen, never more", () => {
  const p = galera(MAX_CURSOR_GAPS + 500);
  const back = decodeCursor(encodeCursor(p, T0), T0, 60_000).position;
  assert.ok(back.gaps.length <= MAX_CURSOR_GAPS);
  assert.ok(p.includes(back), "the cursor claims a seq the position had not seen");
  assert.deepEqual(back.gaps.slice(-100), p.gaps.slice(-100), "the newest holes are kept as they are");
});

test("wide, far-apart holes still make a cursor decodeCursor takes", () => {
  const p = new FeedPosition(
    10 ** 12,
    Array.from({ length: MAX_CURSOR_GAPS }, (_, i) => ({ from: (i + 1) * 10 ** 8, to: (i + 1) * 10 ** 8 + 10 ** 7 })),
  );
  const back = decodeCursor(encodeCursor(p, T0), T0, 60_000).position;
  assert.ok(p.includes(back));
});

test("a version-1 cursor (decimal holes), as replicas made before, is still read", () => {
  const v1 = Buffer.from(`1.${T0}.20.2-3,5,9-10`).toString("base64url");
  assert.deepEqual(decodeCursor(v1, T0, 60_000).position.gaps, [
    { from: 2, to: 3 },
    { from: 5, to: 5 },
    { from: 9, to: 10 },
  ]);
});

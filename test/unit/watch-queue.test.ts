// WatchQueue.next(quietMs): a wait with no change for quietMs ends with undefined (a bookmark), a change
// ends it with the change; nothing is lost or reordered, and an ended queue leaves no timer behind.
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { Job } from "../../src/store/job.js";
import { WatchQueue } from "../../src/watch/watch-queue.js";
import { testJob } from "../helpers/job.js";

function revision(n: number, progress = n): Job {
  return testJob({ status: "running", createdAt: 0, updatedAt: n, startedAt: 0, progress, revision: n });
}

const queue = (): WatchQueue =>
  new WatchQueue(
    async () => [],
    () => undefined,
  );

test("a quiet wait ends with undefined after quietMs; each wait is timed from its own start", async () => {
  const q = queue();
  q.start(1);
  const started = Date.now();
  assert.equal(await q.next(60), undefined);
  assert.ok(Date.now() - started >= 55, `quiet after ${Date.now() - started} ms`);
  // A change before the interval ends the wait with the change, not a bookmark.
  setTimeout(() => q.offer(revision(2)), 20);
  assert.equal((await q.next(60))?.revision, 2);
  // The next wait gets its full interval again.
  const again = Date.now();
  assert.equal(await q.next(60), undefined);
  assert.ok(Date.now() - again >= 55, `second quiet after ${Date.now() - again} ms`);
  q.end(() => new Error("done"));
});

test("changes queued while the reader was away come first, in order; without quietMs a wait never ends quiet", async () => {
  const q = queue();
  q.start(1);
  q.offer(revision(2));
  // A cancel request is a change of state, so it is not coalesced into revision 2.
  q.offer({ ...revision(3), cancelRequested: true });
  assert.equal((await q.next(10))?.revision, 2);
  assert.equal((await q.next(10))?.revision, 3);
  const plain = q.next();
  const outcome = await Promise.race([plain.then(() => "change"), sleep(80).then(() => "still waiting")]);
  assert.equal(outcome, "still waiting");
  q.offer(revision(4));
  assert.equal((await plain).revision, 4);
  q.end(() => new Error("done"));
});

test("an ended queue rejects a waiting reader and its timer does not fire afterwards", async () => {
  const q = queue();
  q.start(1);
  const waiting = q.next(30);
  q.end(() => new Error("ended"));
  await assert.rejects(waiting, /ended/);
  await sleep(60);
  await assert.rejects(q.next(30), /ended/);
});

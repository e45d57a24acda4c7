// WatchQueue's push side: accepted changes go straight to the consumer while it takes more; once it is
// full they wait, progress-only ones coalesced and status changes kept, and come in order on resume().
import assert from "node:assert/strict";
import { test } from "node:test";
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

/** A consumer that takes `room` changes, then says it is full. */
function consumer(room: number): { taken: Job[]; take(job: Job): boolean; room: number } {
  const c = {
    taken: [] as Job[],
    room,
    take(job: Job): boolean {
      c.taken.push(job);
      return c.taken.length < c.room;
    },
  };
  return c;
}

test("a consumer with room gets each change as it is accepted, synchronously, in revision order", () => {
  const q = queue();
  const c = consumer(100);
  q.start(1);
  q.consume((job) => c.take(job));
  q.offer(revision(2));
  assert.deepEqual(
    c.taken.map((j) => j.revision),
    [2],
  );
  q.offer(revision(3));
  q.offer(revision(3)); // a duplicate
  assert.deepEqual(
    c.taken.map((j) => j.revision),
    [2, 3],
  );
  assert.equal(q.size, 0);
});

test("while the consumer is full, progress coalesces to the newest, status changes are kept, resume() hands them in order", () => {
  const q = queue();
  const c = consumer(1);
  q.start(1);
  q.consume((job) => c.take(job));
  q.offer(revision(2)); // fills it
  for (let r = 3; r <= 50; r++) q.offer(revision(r));
  q.offer({ ...revision(51), cancelRequested: true });
  q.offer({ ...revision(52), cancelRequested: true });
  q.offer({ ...revision(53), status: "cancelled", cancelRequested: true });
  assert.equal(q.paused, true);
  assert.equal(q.size, 3, "one item per state: running, cancel requested, cancelled");
  c.room = 100;
  q.resume();
  assert.deepEqual(
    c.taken.map((j) => j.revision),
    [2, 50, 52, 53],
  );
  assert.equal(q.size, 0);
});

test("changes accepted before a consumer is attached wait for it; a consumer attached paused waits for resume", () => {
  const q = queue();
  q.start(1);
  q.offer(revision(2));
  q.offer({ ...revision(3), cancelRequested: true });
  const c = consumer(100);
  q.consume((job) => c.take(job), true);
  assert.equal(c.taken.length, 0);
  q.resume();
  assert.deepEqual(
    c.taken.map((j) => j.revision),
    [2, 3],
  );
});

test("an ended queue hands nothing more and drops what it held", () => {
  const q = queue();
  const c = consumer(1);
  q.start(1);
  q.consume((job) => c.take(job));
  q.offer(revision(2));
  q.offer({ ...revision(3), cancelRequested: true });
  q.end(() => new Error("ended"));
  assert.equal(q.size, 0);
  q.resume();
  q.offer(revision(4));
  assert.deepEqual(
    c.taken.map((j) => j.revision),
    [2],
  );
});

// The watch hub: what a WatchJob stream yields (snapshot, every status change, coalesced progress,
// resume, cross-replica changes) and how it ends (terminal, abort, shutdown, not found).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setImmediate as nextTurn } from "node:timers/promises";
import pino from "pino";
import { NotFoundError, UnavailableError } from "../src/errors.js";
import type { Job, JobStatus } from "../src/store/job.js";
import { createStore } from "../src/store/open.js";
import type { FeedEntry, JobStore, SeqRange } from "../src/store/store.js";
import { ChangeFeed } from "../src/watch/change-feed.js";
import type { WatchOptions } from "../src/watch/job-feed.js";
import { WatchQueue } from "../src/watch/watch-queue.js";
import { Watches } from "../src/watch/watches.js";
import type { TestDialect } from "./helpers/databases.js";
import { DIALECTS, freshStore } from "./helpers/databases.js";
import { testJob } from "./helpers/job.js";
import { pullWatch } from "./helpers/pull-watch.js";

const silent = pino({ level: "silent" });
const everyone = (): boolean => true;

/** One database as two replicas see it: two stores on the same data. */
interface Shared {
  a: JobStore;
  b: JobStore;
  close(): Promise<void>;
}

interface Backend {
  name: string;
  open(): Promise<Shared>;
}

/** A database of the dialect and two stores on it, as two replicas of jobwatch would have. */
function backend(dialect: TestDialect): Backend {
  return {
    name: dialect,
    async open() {
      const { store, database, cleanup } = await freshStore(dialect);
      const second = createStore(database.url);
      return {
        a: store,
        b: second,
        async close() {
          await second.close();
          await cleanup();
        },
      };
    },
  };
}

const BACKENDS: Backend[] = DIALECTS.map(backend);

for (const backend of BACKENDS) {
  describe(`watch hub (${backend.name})`, { timeout: 120_000 }, () => {
    let shared: Shared;
    const hubs: Watches[] = [];
    // The hub's poll timer is unref'd (in the server, the listening socket keeps the process alive);
    // here something must, while a test waits for a poll.
    let keepAlive: NodeJS.Timeout;
    before(async () => {
      keepAlive = setInterval(() => {}, 60_000);
      shared = await backend.open();
    });
    after(async () => {
      clearInterval(keepAlive);
      for (const hub of hubs) await hub.close();
      await shared.close();
    });

    /** A hub on replica A (or B), closed after the suite. */
    function hubOn(store: JobStore, pollMs = 50): Watches {
      const hub = new Watches({ store, pollMs, log: silent });
      hubs.push(hub);
      return hub;
    }

    /**
     * Writes through `store` and publishes the change on `hub`, as a handler does, then lets the event
     * loop turn as a server does between calls (the hub delivers what was published after the turn).
     */
    function writer(store: JobStore, hub: Watches) {
      const pub = async (p: Promise<Job>): Promise<Job> => {
        const job = await p;
        hub.publish(job);
        await nextTurn();
        return job;
      };
      return {
        create: (username = "alice") => pub(store.createJob({ operationType: "add_golden_repo", username })),
        start: (id: string) => pub(store.startJob(id)),
        progress: (id: string, n: number) => pub(store.reportProgress(id, n, "semantic", `${n}/100 files`)),
        cancel: (id: string) => pub(store.cancelJob(id, "no longer needed")),
        complete: (id: string) => pub(store.completeJob(id, { files: 100 })),
        fail: (id: string) => pub(store.failJob(id, "disk full")),
      };
    }

    function opts(extra: Partial<WatchOptions> = {}): WatchOptions {
      return { signal: new AbortController().signal, canSee: everyone, ...extra };
    }

    test("a watcher gets the current job, then every status change up to COMPLETED, then the stream ends", async () => {
      const hub = hubOn(shared.a);
      const w = writer(shared.a, hub);
      const job = await w.create();
      const stream = pullWatch(hub, job.jobId, opts());
      const first = await stream.next();
      assert.equal(first.done, false);
      assert.equal(first.value.status, "pending");
      assert.equal(first.value.revision, 1);

      const seen: Job[] = [first.value as Job];
      const reading = (async () => {
        for await (const j of { [Symbol.asyncIterator]: () => stream }) seen.push(j);
      })();
      await w.start(job.jobId);
      await w.progress(job.jobId, 40);
      await w.progress(job.jobId, 80);
      await w.complete(job.jobId);
      await reading; // the stream ended by itself after COMPLETED

      assertIncreasing(seen);
      assert.deepEqual(statusSteps(seen), ["pending", "running", "completed"]);
      const last = seen.at(-1)!;
      assert.equal(last.progress, 100);
      assert.deepEqual(last.result, { files: 100 });
      assert.equal(hub.watcherCount, 0);
    });

    test("a job already finished gives its snapshot and ends", async () => {
      const hub = hubOn(shared.a);
      const w = writer(shared.a, hub);
      const job = await w.create();
      await w.fail(job.jobId);
      const seen = await collect(pullWatch(hub, job.jobId, opts()));
      assert.deepEqual(
        seen.map((j) => [j.status, j.error]),
        [["failed", "disk full"]],
      );
    });

    test("a change written through another replica reaches a watcher through the change feed", async () => {
      const hubA = hubOn(shared.a);
      const hubB = hubOn(shared.b);
      await hubA.start();
      await hubB.start();
      const onB = writer(shared.b, hubB);
      const job = await onB.create("bob");
      const stream = pullWatch(hubA, job.jobId, opts());
      assert.equal((await stream.next()).value.status, "pending");

      await onB.start(job.jobId);
      const running = await stream.next();
      assert.equal(running.value.status, "running");
      assert.equal(running.value.revision, 2);

      await onB.progress(job.jobId, 50);
      await onB.complete(job.jobId);
      const rest = await collect(stream);
      assertIncreasing([running.value as Job, ...rest]);
      assert.equal(rest.at(-1)!.status, "completed");
      assert.equal(hubA.watcherCount, 0);
    });

    test("many watchers of a job cost one feed query per interval and one snapshot query per change", async () => {
      const onB = writer(shared.b, hubOn(shared.b));
      const job = await onB.create();
      await onB.start(job.jobId);
      const calls = { readFeed: 0, snapshotsAt: 0, snapshotsBetween: 0 };
      const counted = new Proxy(shared.a, {
        get(target, prop) {
          const value: unknown = Reflect.get(target, prop, target);
          if (typeof value !== "function") return value;
          return (...args: unknown[]) => {
            if (prop in calls) calls[prop as keyof typeof calls]++;
            return value.apply(target, args);
          };
        },
      });
      const hubA = new Watches({ store: counted, pollMs: 20, log: silent });
      hubs.push(hubA);
      await hubA.start(); // after the job's changes so far: the feed starts past them
      const streams = Array.from({ length: 20 }, () => pullWatch(hubA, job.jobId, opts()));
      for (const s of streams) assert.equal((await s.next()).value.status, "running");
      calls.snapshotsAt = 0;
      const pollsBefore = calls.readFeed;

      await onB.complete(job.jobId);
      for (const s of streams)
        assert.deepEqual(
          (await collect(s)).map((j) => j.status),
          ["completed"],
        );
      assert.equal(calls.snapshotsAt, 1);
      assert.equal(calls.snapshotsBetween, 0);
      assert.ok(calls.readFeed > pollsBefore);
      assert.equal(hubA.watcherCount, 0);
    });

    test("a failing change-feed poll is logged and retried; the change arrives once the database answers", async () => {
      const warnings: Array<{ msg: string }> = [];
      const log = pino({ level: "warn" }, { write: (line: string) => void warnings.push(JSON.parse(line)) });
      let failures = 3;
      const flaky = new Proxy(shared.a, {
        get(target, prop) {
          if (prop === "readFeed" && failures > 0) {
            return async () => {
              failures--;
              throw new Error("connection lost");
            };
          }
          const value: unknown = Reflect.get(target, prop, target);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      const hubA = new Watches({ store: flaky, pollMs: 20, log });
      hubs.push(hubA);
      await hubA.start();
      const onB = writer(shared.b, hubOn(shared.b));
      const job = await onB.create();
      const stream = pullWatch(hubA, job.jobId, opts());
      await stream.next();
      await onB.complete(job.jobId);
      assert.deepEqual(
        (await collect(stream)).map((j) => j.status),
        ["completed"],
      );
      assert.equal(failures, 0);
      assert.deepEqual(
        warnings.map((w) => w.msg),
        ["watch: change-feed poll failed; retrying every poll interval"],
      );
    });

    test("a revision that overtakes a missing one waits for it: the missing one is read from the store", async () => {
      // No polling: the revision written through replica B reaches the watcher only by the gap fetch.
      const hubA = hubOn(shared.a);
      const onA = writer(shared.a, hubA);
      const job = await onA.create();
      await onA.start(job.jobId);
      const stream = pullWatch(hubA, job.jobId, opts());
      assert.equal((await stream.next()).value.revision, 2);

      await shared.b.cancelJob(job.jobId, "elsewhere"); // revision 3, never published on A
      await onA.complete(job.jobId); // revision 4
      const rest = await collect(stream);
      assert.deepEqual(
        rest.map((j) => [j.revision, j.status, j.cancelRequested]),
        [
          [3, "running", true],
          [4, "completed", true],
        ],
      );
      assert.equal(hubA.watcherCount, 0);
    });

    test("publish returns before any watcher is handed the change: the write is answered first", async () => {
      const hub = hubOn(shared.a);
      const job = await shared.a.createJob({ operationType: "add_golden_repo", username: "alice" });
      const streams = [pullWatch(hub, job.jobId, opts()), pullWatch(hub, job.jobId, opts())];
      for (const s of streams) assert.equal((await s.next()).value.revision, 1);
      const started = await shared.a.startJob(job.jobId);
      hub.publish(started);
      assert.equal(hub.bufferedCount, 0, "nothing handed out inside the publishing turn");
      await nextTurn();
      assert.equal(hub.bufferedCount, 2, "each watcher holds the change after it");
      for (const s of streams) {
        assert.equal((await s.next()).value.revision, started.revision);
        await s.return(undefined);
      }
    });

    test("1,200 watchers and changes published back to back: delivered in slices, every watcher in order", async () => {
      const hub = hubOn(shared.a);
      const job = await shared.a.createJob({ operationType: "add_golden_repo", username: "alice" });
      const streams = Array.from({ length: 1200 }, () => pullWatch(hub, job.jobId, opts()));
      for (const s of streams) assert.equal((await s.next()).value.revision, 1);
      // Status changes (none coalesced), all published in one turn.
      const started = await shared.a.startJob(job.jobId);
      const cancelling = await shared.a.cancelJob(job.jobId, "enough");
      const cancelled = await shared.a.markCancelled(job.jobId);
      for (const j of [started, cancelling, cancelled]) hub.publish(j);
      await nextTurn();
      // The first turn hands out a slice, not the whole burst: the rest follows in later turns.
      assert.ok(hub.bufferedCount > 0 && hub.bufferedCount < 3 * 1200, `${hub.bufferedCount} handed out`);
      for (const s of streams) {
        const got: number[] = [];
        for await (const j of { [Symbol.asyncIterator]: () => s }) got.push(j.revision);
        assert.deepEqual(got, [started.revision, cancelling.revision, cancelled.revision]);
      }
      assert.equal(hub.watcherCount, 0);
    });

    test("a change still being handed out in slices is not wanted again from the feed, and each watcher gets it once", async () => {
      const hub = hubOn(shared.a);
      const job = await shared.a.createJob({ operationType: "add_golden_repo", username: "alice" });
      const streams = Array.from({ length: 1200 }, () => pullWatch(hub, job.jobId, opts()));
      for (const s of streams) assert.equal((await s.next()).value.revision, 1);
      const started = await shared.a.startJob(job.jobId);
      hub.publish(started);
      await nextTurn();
      // Part of the watchers have it, the rest are handed it in the next turns: a poll reading the
      // change's feed entry now must not load its snapshot and deliver it a second time.
      const entry = { seq: 1, jobId: job.jobId, revision: started.revision };
      assert.equal(hub.hub.wants(entry), false);
      hub.hub.receive([{ ...entry, job: { ...started } }]);
      const completed = await shared.a.completeJob(job.jobId, { files: 1 });
      hub.publish(completed);
      for (const s of streams) {
        const got: number[] = [];
        for await (const j of { [Symbol.asyncIterator]: () => s }) got.push(j.revision);
        assert.deepEqual(got, [started.revision, completed.revision]);
      }
      assert.equal(hub.watcherCount, 0);
    });

    test("a watcher that does not read while 1000 progress reports arrive holds a bounded queue and misses no status change", async () => {
      const hub = hubOn(shared.a);
      await hub.start(); // the feed brings the same changes again: they must not be duplicated
      const w = writer(shared.a, hub);
      const job = await w.create();
      await w.start(job.jobId);
      const stream = pullWatch(hub, job.jobId, opts());
      assert.equal((await stream.next()).value.status, "running");

      let maxBuffered = 0;
      for (let i = 1; i <= 1000; i++) {
        if (i === 600) await w.cancel(job.jobId);
        await w.progress(job.jobId, i % 100);
        maxBuffered = Math.max(maxBuffered, hub.bufferedCount);
      }
      const lastProgress = await w.progress(job.jobId, 99);
      const done = await w.complete(job.jobId);
      maxBuffered = Math.max(maxBuffered, hub.bufferedCount);
      assert.ok(maxBuffered <= 4, `the watcher held ${maxBuffered} changes`);

      const rest = await collect(stream);
      assertIncreasing(rest);
      assert.deepEqual(
        rest.map((j) => [j.status, j.cancelRequested]),
        [
          ["running", false],
          ["running", true],
          ["completed", true],
        ],
      );
      // Each run of progress reports shows as its newest one.
      assert.equal(rest[0]!.progress, 599 % 100);
      assert.equal(rest[1]!.revision, lastProgress.revision);
      assert.equal(rest[2]!.revision, done.revision);
    });

    test("a watcher that does not read while another replica writes many progress reports misses no status change", async () => {
      const hubA = hubOn(shared.a);
      const hubB = hubOn(shared.b);
      await hubA.start();
      const onB = writer(shared.b, hubB);
      const job = await onB.create();
      await onB.start(job.jobId);
      const stream = pullWatch(hubA, job.jobId, opts());
      assert.equal((await stream.next()).value.status, "running");

      let maxBuffered = 0;
      for (let i = 1; i <= 200; i++) {
        if (i === 120) await onB.cancel(job.jobId);
        await onB.progress(job.jobId, i % 100);
        maxBuffered = Math.max(maxBuffered, hubA.bufferedCount);
      }
      await onB.complete(job.jobId);
      assert.ok(maxBuffered <= 4, `the watcher held ${maxBuffered} changes`);

      const rest = await collect(stream);
      assertIncreasing(rest);
      const steps = rest
        .map((j) => `${j.status}${j.cancelRequested ? "+cancel" : ""}`)
        .filter((s, i, all) => s !== all[i - 1]);
      assert.deepEqual(steps, ["running", "running+cancel", "completed+cancel"]);
    });

    test("a resuming watcher gets the status changes it missed, then the current job, with no duplicates", async () => {
      const hub = hubOn(shared.a);
      const w = writer(shared.a, hub);
      const job = await w.create(); // r1 pending
      await w.start(job.jobId); // r2 running
      await w.progress(job.jobId, 10); // r3
      await w.progress(job.jobId, 20); // r4
      await w.cancel(job.jobId); // r5 cancel requested
      await w.progress(job.jobId, 30); // r6

      const fromTwo = pullWatch(hub, job.jobId, opts({ afterRevision: 2 }));
      const fromOne = pullWatch(hub, job.jobId, opts({ afterRevision: 1 }));
      const fromSix = pullWatch(hub, job.jobId, opts({ afterRevision: 6 }));
      const firstOfTwo = [await fromTwo.next(), await fromTwo.next()].map((r) => r.value.revision);
      const firstOfOne = [await fromOne.next(), await fromOne.next(), await fromOne.next()].map(
        (r) => r.value.revision,
      );
      assert.deepEqual(firstOfTwo, [5, 6]);
      assert.deepEqual(firstOfOne, [2, 5, 6]);

      const nextOfSix = fromSix.next(); // already current: nothing until the next change
      await w.complete(job.jobId); // r7
      assert.equal((await nextOfSix).value.revision, 7);
      assert.deepEqual(
        (await collect(fromTwo)).map((j) => j.revision),
        [7],
      );
      assert.deepEqual(
        (await collect(fromOne)).map((j) => j.revision),
        [7],
      );
      assert.deepEqual(await collect(fromSix), []);
      // Resuming after the end of a finished job: nothing more to send, the stream ends OK.
      assert.deepEqual(await collect(pullWatch(hub, job.jobId, opts({ afterRevision: 7 }))), []);
    });

    test("client cancel releases the watcher at once, whether it waits for a change or sits between reads", async () => {
      const hub = hubOn(shared.a);
      const w = writer(shared.a, hub);
      const job = await w.create();

      const waiting = new AbortController();
      const s1 = pullWatch(hub, job.jobId, opts({ signal: waiting.signal }));
      await s1.next();
      const pending = s1.next();
      const idle = new AbortController();
      const s2 = pullWatch(hub, job.jobId, opts({ signal: idle.signal }));
      await s2.next();
      const stopped = pullWatch(hub, job.jobId, opts());
      await stopped.next();
      assert.equal(hub.watcherCount, 3);

      waiting.abort();
      await assert.rejects(pending, { name: "AbortError" });
      idle.abort();
      assert.equal(hub.watcherCount, 1); // released before s2 is read again
      await assert.rejects(s2.next(), { name: "AbortError" });
      await stopped.return(undefined); // the consumer stops reading
      assert.equal(hub.watcherCount, 0);
      assert.equal(hub.bufferedCount, 0);

      const early = new AbortController();
      early.abort();
      await assert.rejects(pullWatch(hub, job.jobId, opts({ signal: early.signal })).next(), { name: "AbortError" });
      assert.equal(hub.watcherCount, 0);
    });

    test("shutdown ends every watch with UNAVAILABLE naming the revision to resume after", async () => {
      const hub = new Watches({ store: shared.a, pollMs: 50, log: silent });
      await hub.start();
      const w = writer(shared.a, hub);
      const job = await w.create();
      await w.start(job.jobId);
      const waiting = pullWatch(hub, job.jobId, opts());
      await waiting.next();
      const pending = waiting.next();
      const between = pullWatch(hub, job.jobId, opts({ afterRevision: 1 }));
      await between.next();
      await w.progress(job.jobId, 5); // r3, queued for `between`, never read
      // A WatchJob handler stuck on a slow client wakes on `closing` and pulls once more: by then its
      // watch has ended, so that pull is what names the revision to resume after.
      let pulledOnClosing: Promise<unknown> | undefined;
      hub.closing.addEventListener("abort", () => {
        pulledOnClosing = between.next().then(
          (r) => r,
          (err: unknown) => err,
        );
      });
      assert.equal(hub.closing.aborted, false);

      await hub.close();
      assert.equal(hub.closing.aborted, true);
      assert.equal(hub.watcherCount, 0);
      const expect = (revision: number) => (err: unknown) => {
        assert.ok(err instanceof UnavailableError);
        assert.equal(err.message, `server is shutting down: reconnect and resume with after_revision=${revision}`);
        return true;
      };
      // `waiting` got r3 before the close; `between` got r2 and nothing since.
      assert.equal((await pending).value.revision, 3);
      await assert.rejects(waiting.next(), expect(3));
      expect(2)(await pulledOnClosing);
      await assert.rejects(pullWatch(hub, job.jobId, opts({ afterRevision: 3 })).next(), expect(3));
    });

    test("a missing job and another user's job are both NOT_FOUND, before anything is sent", async () => {
      const hub = hubOn(shared.a);
      const w = writer(shared.a, hub);
      const job = await w.create("carol");
      const missing = "00000000-0000-4000-8000-000000000000";
      const notFound = (id: string) => (err: unknown) => {
        assert.ok(err instanceof NotFoundError);
        assert.equal(err.message, `job ${id} not found (finished jobs are removed after the retention period)`);
        return true;
      };
      await assert.rejects(pullWatch(hub, missing, opts()).next(), notFound(missing));
      const onlyDave = opts({ canSee: (j) => j.username === "dave" });
      await assert.rejects(pullWatch(hub, job.jobId, onlyDave).next(), notFound(job.jobId));
      assert.equal(hub.watcherCount, 0);
    });
  });
}

describe("change feed cursor", () => {
  /** A feed whose entries become visible when the test says so, like MySQL commits. */
  function fakeFeed() {
    const visible: FeedEntry[] = [];
    const reads: number[] = [];
    const rowsRead: number[] = [];
    return {
      reads,
      /** Rows the store returned, per query. */
      rowsRead,
      show: (...seqs: number[]) => {
        for (const seq of seqs) visible.push({ seq, jobId: "j", revision: seq });
        visible.sort((x, y) => x.seq - y.seq);
      },
      store: {
        latestSeq: async () => 0,
        readFeed: async (afterSeq: number, limit: number) => {
          reads.push(afterSeq);
          const rows = visible.filter((e) => e.seq > afterSeq).slice(0, limit);
          rowsRead.push(rows.length);
          return rows;
        },
        readFeedRanges: async (ranges: readonly SeqRange[], limit: number) => {
          const rows = visible.filter((e) => ranges.some((r) => r.from <= e.seq && e.seq <= r.to)).slice(0, limit);
          rowsRead.push(rows.length);
          return rows;
        },
      },
    };
  }

  async function readSeqs(feed: ChangeFeed): Promise<number[]> {
    const batch = await feed.read();
    batch.commit();
    return batch.entries.map((e) => e.seq);
  }

  test("a seq that commits after a higher one is still returned, once", async () => {
    let now = 0;
    const f = fakeFeed();
    const feed = new ChangeFeed({ store: f.store, gapTimeoutMs: 5000, now: () => now });
    await feed.start();
    f.show(1, 2, 4);
    assert.deepEqual(await readSeqs(feed), [1, 2, 4]);
    assert.equal(feed.cursor, 2); // 3 is missing: read again from there
    now = 1000;
    f.show(3, 5);
    assert.deepEqual(await readSeqs(feed), [3, 5]);
    assert.equal(feed.cursor, 5);
    assert.deepEqual(await readSeqs(feed), []);
  });

  test("a seq missing for longer than the gap timeout is given up (a rolled-back insert)", async () => {
    let now = 0;
    const f = fakeFeed();
    const feed = new ChangeFeed({ store: f.store, gapTimeoutMs: 5000, now: () => now });
    await feed.start();
    f.show(1, 3);
    assert.deepEqual(await readSeqs(feed), [1, 3]);
    now = 4999;
    assert.deepEqual(await readSeqs(feed), []);
    assert.equal(feed.cursor, 1);
    now = 5000;
    assert.deepEqual(await readSeqs(feed), []);
    assert.equal(feed.cursor, 3);
  });

  test("Galera's interleaved seqs (one node takes every third): each poll reads only new rows, not the window", async () => {
    let now = 0;
    const f = fakeFeed();
    const feed = new ChangeFeed({ store: f.store, gapTimeoutMs: 5000, now: () => now });
    await feed.start();
    let seq = 1;
    for (let poll = 0; poll < 20; poll++) {
      const fresh = [seq, seq + 3, seq + 6];
      seq += 9;
      f.show(...fresh);
      f.rowsRead.length = 0;
      assert.deepEqual(await readSeqs(feed), fresh);
      assert.equal(
        f.rowsRead.reduce((a, b) => a + b, 0),
        3,
        `poll ${poll} read ${f.rowsRead.join("+")} rows for 3 new`,
      );
      now += 200;
    }
    // A hole that does fill (a late commit) is still found, once, within the re-read interval (1 s).
    f.show(seq - 2);
    now += 1000;
    assert.deepEqual(await readSeqs(feed), [seq - 2]);
    assert.deepEqual(await readSeqs(feed), []);
  });

  test("with more holes than one query names, the read starts at the oldest hole and misses nothing", async () => {
    const f = fakeFeed();
    const feed = new ChangeFeed({ store: f.store, gapTimeoutMs: 5000, maxGapRanges: 2 });
    await feed.start();
    f.show(2, 4, 6, 8);
    assert.deepEqual(await readSeqs(feed), [2, 4, 6, 8]);
    f.show(1, 5, 7, 9);
    assert.deepEqual(await readSeqs(feed), [1, 5, 7, 9]);
    assert.equal(feed.cursor, 2, "3 is still awaited");
  });

  test("a batch not committed (its snapshots failed to load) is read again", async () => {
    const f = fakeFeed();
    const feed = new ChangeFeed({ store: f.store, gapTimeoutMs: 5000 });
    await feed.start();
    f.show(1, 2);
    const dropped = await feed.read();
    assert.deepEqual(
      dropped.entries.map((e) => e.seq),
      [1, 2],
    );
    assert.deepEqual(await readSeqs(feed), [1, 2]);
  });

  test("a burst larger than a page is read in pages; one query when the page is not full", async () => {
    const f = fakeFeed();
    const feed = new ChangeFeed({ store: f.store, gapTimeoutMs: 5000, pageSize: 10, maxPages: 4 });
    await feed.start();
    f.show(...Array.from({ length: 25 }, (_, i) => i + 1));
    assert.equal((await readSeqs(feed)).length, 25);
    assert.equal(f.reads.length, 3);
    f.show(26);
    assert.deepEqual(await readSeqs(feed), [26]);
    assert.equal(f.reads.length, 4);
  });
});

describe("watch queue", () => {
  const job = (revision: number, status: JobStatus = "running", progress = revision): Job => ({
    ...sampleJob(),
    revision,
    status,
    progress,
  });

  test("duplicates and old revisions are dropped; a revision that overtakes another waits for it", async () => {
    const fetched: Array<[number, number]> = [];
    const q = new WatchQueue(
      async (a, b) => {
        fetched.push([a, b]);
        return [job(b - 1)];
      },
      (err) => assert.fail(String(err)),
    );
    const taken: number[] = [];
    q.consume((j) => taken.push(j.revision) > 0);
    q.offer(job(2)); // held until start
    q.start(1);
    q.offer(job(2));
    q.offer(job(1));
    q.offer(job(4, "completed"));
    await nextTurn();
    assert.deepEqual(taken, [2, 3, 4]);
    assert.deepEqual(fetched, [[2, 4]]);
  });

  test("a failed fetch of missing revisions ends the queue through the owner", async () => {
    let failed: unknown;
    const q = new WatchQueue(
      async () => {
        throw new Error("database gone");
      },
      (err) => {
        failed = err;
        q.end(() => new UnavailableError("resume"));
      },
    );
    q.start(1);
    q.offer(job(3));
    await assert.rejects(q.until(new Promise(() => undefined)), UnavailableError);
    assert.match(String(failed), /database gone/);
    assert.equal(q.size, 0);
  });
});

/** Reads a stream to its end. */
async function collect(stream: AsyncGenerator<Job>): Promise<Job[]> {
  const jobs: Job[] = [];
  for await (const job of { [Symbol.asyncIterator]: () => stream }) jobs.push(job);
  return jobs;
}

/** The sequence of statuses, one entry per run of equal ones. */
function statusSteps(jobs: Job[]): JobStatus[] {
  const steps: JobStatus[] = [];
  for (const j of jobs) if (steps.at(-1) !== j.status) steps.push(j.status);
  return steps;
}

function assertIncreasing(jobs: Job[]): void {
  for (let i = 1; i < jobs.length; i++) {
    assert.ok(
      jobs[i]!.revision > jobs[i - 1]!.revision,
      `revision ${jobs[i]!.revision} after ${jobs[i - 1]!.revision}`,
    );
  }
}

function sampleJob(): Job {
  return testJob({ jobId: "11111111-1111-4111-8111-111111111111" });
}

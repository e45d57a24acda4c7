// The change feed against real databases: seq order, snapshots, pruning, and MySQL commit-order holes.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DIALECTS } from "./helpers/databases.js";
import { eventRevisions, range, setup } from "./helpers/store.js";

for (const dialect of DIALECTS) {
  describe(`store feed on ${dialect}`, () => {
    test("change feed: seq order, snapshots at each revision, pruning of feed-only events", async (t) => {
      const { stores, clock } = await setup(t, dialect, 2);
      const [a, b] = [stores[0]!, stores[1]!];
      const start = await b.latestSeq();
      const job = await a.createJob({ operationType: "op", username: "u" });
      await a.startJob(job.jobId);
      await a.reportProgress(job.jobId, 10);
      await a.heartbeat(job.jobId);
      await a.completeJob(job.jobId, { ok: 1 });

      const feed = await b.readFeed(start, 100);
      assert.deepEqual(
        feed.map((e) => [e.jobId, e.revision]),
        range(1, 5).map((r) => [job.jobId, r]),
      );
      assert.ok(feed.every((e, i) => i === 0 || e.seq > feed[i - 1]!.seq));
      assert.equal(await b.latestSeq(), feed[4]!.seq);
      assert.deepEqual(await b.readFeed(feed[1]!.seq, 2), feed.slice(2, 4));
      assert.deepEqual(await b.readFeed(feed[4]!.seq, 100), []);
      // The holes a reader waits on, by name: single seqs and ranges, in seq order, within the limit.
      const s = feed.map((e) => e.seq);
      assert.deepEqual(
        await b.readFeedRanges(
          [
            { from: s[3]!, to: s[4]! },
            { from: s[1]!, to: s[1]! },
          ],
          100,
        ),
        [feed[1], feed[3], feed[4]],
      );
      assert.deepEqual(await b.readFeedRanges([{ from: s[0]!, to: s[4]! }], 2), feed.slice(0, 2));
      assert.deepEqual(await b.readFeedRanges([{ from: s[4]! + 1, to: s[4]! + 10 }], 100), []);
      // Causal (the change feed's last look before giving a hole up): the same rows; on Galera after waiting to apply.
      assert.deepEqual(await b.readFeedRanges([{ from: s[0]!, to: s[4]! }], 3, { causal: true }), feed.slice(0, 3));

      const snaps = await b.snapshotsAt([feed[4]!.seq, feed[0]!.seq, 999_999]);
      assert.deepEqual(
        snaps.map((s) => [s.revision, s.status]),
        [
          [5, "completed"],
          [1, "pending"],
        ],
      );
      assert.deepEqual(snaps[0], await b.getJob(job.jobId));
      assert.deepEqual(
        (await b.snapshotsBetween(job.jobId, 1, 5)).map((s) => [s.revision, s.status, s.progress]),
        [
          [2, "running", 0],
          [3, "running", 10],
          [4, "running", 10],
        ],
      );

      // Only the heartbeat is feed-only; progress 10 was the first progress and is history.
      clock.advance(11 * 60_000);
      assert.equal(await a.pruneFeed(clock.t - 10 * 60_000), 1);
      assert.deepEqual(await eventRevisions(a, job.jobId), [1, 2, 3, 5]);
      assert.equal((await a.getHistory(job.jobId)).length, 4);
    });

    if (dialect === "mysql") {
      test("readFeed shows committed events only; latestSeq stops before a fresh hole and steps over a rolled-back one", async (t) => {
        const { stores, clock } = await setup(t, dialect, 2);
        const [a, b] = [stores[0]!, stores[1]!];
        const job = await a.createJob({ operationType: "op", username: "u" });
        const cursor = await b.latestSeq();
        const event = {
          job_id: job.jobId,
          at: clock.t,
          status: "pending",
          progress: 0,
          phase: null,
          detail: null,
          cancel_requested: 0,
          error: null,
          recorded: 0,
          snapshot: "{}",
        };

        // A transaction takes a seq and holds it uncommitted while a later event commits.
        const holdOpen = async (revision: number, outcome: "commit" | "rollback"): Promise<void> => {
          let inserted!: () => void;
          let finish!: () => void;
          const insertedP = new Promise<void>((r) => (inserted = r));
          const finishP = new Promise<void>((r) => (finish = r));
          const tx = a.db
            .transaction()
            .execute(async (trx) => {
              await trx
                .insertInto("job_events")
                .values({ ...event, revision })
                .execute();
              inserted();
              await finishP;
              if (outcome === "rollback") throw new Error("rolled back on purpose");
            })
            .catch((e: Error) => assert.equal(e.message, "rolled back on purpose"));
          await insertedP;
          t.after(() => finish());
          holds.push({ finish, tx });
        };
        const holds: { finish: () => void; tx: Promise<unknown> }[] = [];

        await holdOpen(100, "commit");
        await a.startJob(job.jobId); // revision 2 commits with a higher seq
        assert.deepEqual(
          (await b.readFeed(cursor, 100)).map((e) => e.revision),
          [2],
          "the uncommitted seq is not visible yet; the reader sees the hole",
        );
        assert.equal(await b.latestSeq(), cursor, "latestSeq stops before the uncommitted seq");
        holds[0]!.finish();
        await holds[0]!.tx;
        assert.deepEqual(
          (await b.readFeed(cursor, 100)).map((e) => e.revision),
          [100, 2],
        );

        const cursor2 = (await b.readFeed(cursor, 100)).at(-1)!.seq;
        await holdOpen(200, "rollback");
        await a.reportProgress(job.jobId, 5);
        holds[1]!.finish();
        await holds[1]!.tx;
        assert.equal(await b.latestSeq(), cursor2, "latestSeq stops before a fresh hole");
        clock.advance(3000);
        assert.equal(
          await b.latestSeq(),
          (await b.readFeed(cursor2, 100)).at(-1)!.seq,
          "a hole older than the grace period is a rollback: latestSeq steps over it",
        );
      });
    }
  });
}

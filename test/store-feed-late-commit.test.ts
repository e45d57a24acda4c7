// The change feed on MySQL when a seq commits seconds after it was taken. A transition that waits for a row lock (the
// job counts, held by another transaction) must take its event's seq only after that wait; and a seq that another
// writer holds while it stays open must not be given up as a rolled-back insert: the change would reach no watcher.
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createConnection } from "mysql2/promise";
import { ChangeFeed } from "../src/watch/change-feed.js";
import { TEST_MYSQL_URL } from "./helpers/databases.js";
import { setup } from "./helpers/store.js";

/** Two stores over a fresh MySQL database, a job of u1 (pending) and one of u2 (running), a feed, and a raw connection. */
async function scene(t: TestContext) {
  const { stores, url } = await setup(t, "mysql", 2);
  const [writer, reader] = [stores[0]!, stores[1]!];
  const held = await writer.createJob({ operationType: "op", username: "u1" });
  const other = await writer.startJob((await writer.createJob({ operationType: "op", username: "u2" })).jobId);
  const feed = new ChangeFeed({ store: reader, gapTimeoutMs: 1000, gapRereadMs: 200 });
  await feed.start();
  const seen: string[] = [];
  const poll = async (): Promise<void> => {
    const batch = await feed.read();
    batch.commit();
    for (const e of batch.entries) seen.push(`${e.jobId === held.jobId ? "held" : "other"}@${e.revision}`);
  };
  /** Polls every 100 ms for `ms`. */
  const pollFor = async (ms: number): Promise<void> => {
    for (const until = Date.now() + ms; Date.now() < until; ) {
      await poll();
      await sleep(100);
    }
  };
  const u = new URL(url);
  const raw = await createConnection({
    host: u.hostname,
    port: Number(u.port || 3306),
    user: decodeURIComponent(u.username),
    database: u.pathname.slice(1),
  });
  t.after(() => raw.end());
  return { writer, held, other, seen, pollFor, raw };
}

describe("mysql: a change committed after the gap timeout", {
  skip: TEST_MYSQL_URL ? false : "JOBWATCH_TEST_MYSQL_URL is not set",
}, () => {
  test("a StartJob that waited 3.5 s for the job counts' lock reaches the feed (gap timeout 1 s)", async (t) => {
    const { writer, held, other, seen, pollFor, raw } = await scene(t);
    // Another transaction holds u1's job-count rows: StartJob of u1's job waits for them.
    await raw.query("begin");
    await raw.query("select * from job_counts where username = 'u1' for update");
    const started = writer.startJob(held.jobId);
    await sleep(300);
    // A later change commits meanwhile.
    await writer.reportProgress(other.jobId, 50);
    await pollFor(3500);
    assert.deepEqual(seen, ["other@3"], "only the progress has committed while the counts are locked");
    await raw.query("commit");
    assert.equal((await started).status, "running");
    await pollFor(1000);
    assert.deepEqual(seen, ["other@3", "held@2"], "the StartJob that committed late is in the feed");
  });

  test("a seq an open transaction took 3.5 s ago is not given up: its entry arrives at the commit", async (t) => {
    const { writer, held, other, seen, pollFor, raw } = await scene(t);
    // Another writer takes a seq and stays open (as one stuck in its commit would). A plain INSERT of the copied values:
    // an INSERT ... SELECT of the table into itself, under REPEATABLE READ, share-locked every row the plan scanned (a
    // small table's whole index, gaps included), so the ReportProgress below waited for that lock, retried, and the file
    // hung for 25 minutes in one CI run.
    const [rows] = await raw.query("select * from job_events where job_id = ? and revision = 1", [held.jobId]);
    const { seq: _seq, ...event } = (rows as Record<string, unknown>[])[0]!;
    await raw.query("begin");
    await raw.query("insert into job_events set ?", [{ ...event, revision: 99 }]);
    await writer.reportProgress(other.jobId, 50);
    await pollFor(3500);
    assert.deepEqual(seen, ["other@3"]);
    await raw.query("commit");
    await pollFor(1000);
    assert.deepEqual(seen, ["other@3", "held@99"], "the seq held open for 3.5 s is in the feed once committed");
  });
});

// The change feed on MySQL when a write takes its seq and commits seconds later: a transition inserts its event
// (taking the seq), then waits for the row lock of the job counts that another transaction holds. The feed sees
// the later seqs, waits on the hole, and must not give it up while that writer is still open.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createConnection } from "mysql2/promise";
import { ChangeFeed } from "../src/watch/change-feed.js";
import { TEST_MYSQL_URL } from "./helpers/databases.js";
import { setup } from "./helpers/store.js";

describe("mysql: a change committed after the gap timeout", {
  skip: TEST_MYSQL_URL ? false : "JOBWATCH_TEST_MYSQL_URL is not set",
}, () => {
  test("reaches the feed once its transaction commits, 3.5 s after its seq was taken (gap timeout 1 s)", async (t) => {
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

    // Another transaction holds u1's job-count rows: StartJob of u1's job inserts its event, then waits for them.
    const u = new URL(url);
    const locker = await createConnection({
      host: u.hostname,
      port: Number(u.port || 3306),
      user: "root",
      database: u.pathname.slice(1),
    });
    t.after(() => locker.end());
    await locker.query("begin");
    await locker.query("select * from job_counts where username = 'u1' for update");
    const started = writer.startJob(held.jobId);
    await sleep(300);
    // A later seq commits meanwhile: the started job's seq is a hole the feed waits on.
    await writer.reportProgress(other.jobId, 50);
    const until = Date.now() + 3500;
    while (Date.now() < until) {
      await poll();
      await sleep(100);
    }
    assert.deepEqual(seen, ["other@3"], "only the progress has committed while the counts are locked");

    await locker.query("commit");
    assert.equal((await started).status, "running");
    for (let i = 0; i < 10 && seen.length < 2; i++) {
      await poll();
      await sleep(100);
    }
    assert.deepEqual(seen, ["other@3", "held@2"], "the StartJob that committed late is in the feed");
  });
});

// Resuming a watch costs the job's status transitions, not its revisions: watchers that resume from an
// old revision of a job with thousands of progress reports read a handful of stored rows between them.
// (Timings of the 20,000-revision storm are in `npm run bench:resume`.)
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { JobStatus } from "../src/gen/jobwatch/v1/job.js";
import type { Job as StoreJob } from "../src/store/job.js";
import type { SqlJobStore } from "../src/store/sql-job-store.js";
import type { JobStore } from "../src/store/store.js";
import { DIALECTS } from "./helpers/databases.js";
import type { TestServer } from "./helpers/server.js";
import { startTestServer } from "./helpers/server.js";

/** The store methods that read past revisions of one job for a watcher. */
const REPLAY_READS = new Set(["snapshotsBetween", "transitionsBetween"]);

/** What the watchers' replay read from the store: calls, rows (snapshots) and their bytes. */
interface Reads {
  calls: number;
  rows: number;
  bytes: number;
}

/** The store with every replay read counted in `reads` (methods run on the real store). */
function counting(store: SqlJobStore, reads: Reads): JobStore {
  return new Proxy(store, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== "function") return value;
      if (!REPLAY_READS.has(String(property))) return value.bind(target);
      return async (...args: unknown[]) => {
        const jobs = (await value.apply(target, args)) as StoreJob[];
        reads.calls++;
        reads.rows += jobs.length;
        reads.bytes += jobs.reduce((n, j) => n + JSON.stringify(j).length, 0);
        return jobs;
      };
    },
  }) as JobStore;
}

const DETAIL = "d".repeat(1000);
const WATCHERS = 40;

for (const dialect of DIALECTS) {
  describe(`resuming watches (${dialect})`, () => {
    const reads: Reads = { calls: 0, rows: 0, bytes: 0 };
    let s: TestServer;
    before(async () => {
      s = await startTestServer({ dialect, wrapStore: (store) => counting(store, reads) });
    });
    after(async () => {
      await s?.stop();
    });
    const reset = () => Object.assign(reads, { calls: 0, rows: 0, bytes: 0 });

    /** A running job of alice's with `reports` progress reports of ~1 KB details after revision `from`. */
    const progress = async (jobId: string, reports: number): Promise<StoreJob> => {
      let job: StoreJob | undefined;
      for (let i = 0; i < reports; i++)
        job = await s.store.reportProgress(jobId, i % 100, "indexing", `${i} ${DETAIL}`);
      return job!;
    };

    test(`${WATCHERS} watchers resuming from revision 2 of a job at revision 1,500 read a few rows, not 1,500 each`, async () => {
      const created = await s.store.createJob({ operationType: "resume_storm", username: "alice" });
      await s.store.startJob(created.jobId);
      const current = await progress(created.jobId, 1498);
      assert.equal(current.revision, 1500);
      reset();
      const watches = Array.from({ length: WATCHERS }, () =>
        s.watch(s.tokens.alice, { jobId: created.jobId, afterRevision: 2 }),
      );
      await Promise.all(watches.map((w) => w.received(1)));
      // Nothing changed status after revision 2: each watcher gets the current state, nothing replayed.
      for (const w of watches)
        assert.deepEqual(
          w.jobs.map((j) => j.revision),
          [1500],
        );
      assert.ok(reads.rows <= WATCHERS * 4, `${reads.rows} rows read for ${WATCHERS} watchers`);
      assert.ok(reads.bytes <= WATCHERS * 4 * 4096, `${reads.bytes} bytes read for ${WATCHERS} watchers`);
      await s.as(s.tokens.worker).worker.completeJob({ jobId: created.jobId });
      for (const w of watches) {
        const end = await w.done;
        assert.equal(grpc.status[end.code], "OK");
        assert.deepEqual(
          w.jobs.map((j) => [j.revision, j.status]),
          [
            [1500, JobStatus.JOB_STATUS_RUNNING],
            [1501, JobStatus.JOB_STATUS_COMPLETED],
          ],
        );
      }
    });

    test("a resumed watch still gets every status and cancel transition it missed, in order, and nothing else", async () => {
      const created = await s.store.createJob({ operationType: "resume_transitions", username: "alice" });
      await s.store.startJob(created.jobId); // 2
      await progress(created.jobId, 500); // 3..502
      await s.store.cancelJob(created.jobId, "stop"); // 503: cancel requested
      const last = await progress(created.jobId, 500); // 504..1003
      assert.equal(last.revision, 1003);
      for (const [afterRevision, expected] of [
        [1, [2, 503, 1003]],
        [2, [503, 1003]],
        [400, [503, 1003]],
        [503, [1003]],
        [1002, [1003]],
      ] as const) {
        reset();
        const w = s.watch(s.tokens.alice, { jobId: created.jobId, afterRevision });
        await w.received(expected.length);
        assert.deepEqual(
          w.jobs.map((j) => j.revision),
          [...expected],
          `after_revision ${afterRevision}`,
        );
        assert.ok(reads.rows <= 2, `after_revision ${afterRevision}: ${reads.rows} rows read`);
        w.cancel();
        await w.done;
      }
    });
  });
}

// The store's record of status transitions: marked at write time, backfilled for events written before
// migration 0004, read by transitionsBetween alone; and reads scoped to a user that skip others' jobs.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Kysely } from "kysely";
import { Migrator, sql } from "kysely";
import type { Database } from "../src/store/database.js";
import { migrationProvider } from "../src/store/migrations.js";
import { createStore } from "../src/store/open.js";
import { DIALECTS, freshDatabase } from "./helpers/databases.js";
import { setup } from "./helpers/store.js";

for (const dialect of DIALECTS) {
  describe(`store transitions (${dialect})`, () => {
    test("every status and cancel-flag change is a transition; progress, heartbeats and phases are not", async (t) => {
      const { store } = await setup(t, dialect);
      const job = await store.createJob({ operationType: "op", username: "alice" }); // 1
      await store.startJob(job.jobId); // 2
      await store.reportProgress(job.jobId, 10, "a", "x"); // 3
      await store.heartbeat(job.jobId); // 4
      await store.reportProgress(job.jobId, 20, "b"); // 5
      await store.cancelJob(job.jobId, "why"); // 6
      await store.cancelJob(job.jobId, "again"); // no change
      await store.reportProgress(job.jobId, 30); // 7
      await store.markCancelled(job.jobId); // 8
      const all = await store.transitionsBetween(job.jobId, 0, 100, 16);
      assert.deepEqual(
        all.map((j) => [j.revision, j.status, j.cancelRequested]),
        [
          [1, "pending", false],
          [2, "running", false],
          [6, "running", true],
          [8, "cancelled", true],
        ],
      );
      assert.deepEqual(
        (await store.transitionsBetween(job.jobId, 2, 8, 16)).map((j) => j.revision),
        [6],
      );
      assert.deepEqual(
        (await store.transitionsBetween(job.jobId, 0, 100, 2)).map((j) => j.revision),
        [1, 2],
      );
    });

    test("SQLite: the transition index holds transitions only (migration 0013), and transitionsBetween still reads it", {
      skip: dialect !== "sqlite",
    }, async (t) => {
      const { store } = await setup(t, dialect);
      const db = store.db as Kysely<Database>;
      const job = await store.createJob({ operationType: "op", username: "alice" });
      await store.startJob(job.jobId);
      for (let p = 1; p <= 5; p++) await store.reportProgress(job.jobId, p);
      await store.cancelJob(job.jobId);
      const index = await sql<{
        n: number;
      }>`select count(*) as n from job_events indexed by job_events_job_transition where job_id = ${job.jobId} and transition_revision is not null`.execute(
        db,
      );
      assert.equal(index.rows[0]?.n, 3); // created, started, cancel requested: none of the 5 reports
      const definition = await sql<{
        sql: string;
      }>`select sql from sqlite_master where name = 'job_events_job_transition'`.execute(db);
      assert.match(definition.rows[0]?.sql ?? "", /where transition_revision is not null/i);
      const plan = await sql<{
        detail: string;
      }>`explain query plan select snapshot from job_events where job_id = ${job.jobId} and transition_revision > ${0} and transition_revision < ${100} order by transition_revision limit ${16}`.execute(
        db,
      );
      assert.match(plan.rows.map((r) => r.detail).join("; "), /job_events_job_transition/);
      assert.deepEqual(
        (await store.transitionsBetween(job.jobId, 0, 100, 16)).map((j) => j.revision),
        [1, 2, 8],
      );
    });

    test("migration 0004 marks the transitions of events written before it, across pruned events", async () => {
      const database = await freshDatabase(dialect);
      const store = createStore(database.url);
      try {
        const db = store.db as Kysely<Database>;
        const migrator = new Migrator({ db, provider: migrationProvider(store.dialect) });
        const { error } = await migrator.migrateTo("0003_no_pad_collation");
        assert.equal(error, undefined);
        // Two jobs' events as 0003 stored them; revision 4 of job a (a heartbeat) was pruned.
        const event = (jobId: string, revision: number, status: string, cancel = 0) => ({
          job_id: jobId,
          revision,
          at: revision,
          status,
          progress: 0,
          phase: null,
          detail: null,
          cancel_requested: cancel,
          error: null,
          recorded: 1,
          snapshot: JSON.stringify({ jobId, revision, status, cancelRequested: cancel === 1 }),
        });
        await (db as unknown as Kysely<{ job_events: ReturnType<typeof event> }>)
          .insertInto("job_events")
          .values([
            event("a", 1, "pending"),
            event("a", 2, "running"),
            event("a", 3, "running"),
            event("a", 5, "running"),
            event("a", 6, "running", 1),
            event("a", 7, "cancelled", 1),
            event("b", 1, "pending"),
            event("b", 2, "completed"),
          ])
          .execute();
        await store.migrate();
        const marked = async (jobId: string) =>
          (await store.transitionsBetween(jobId, 0, 100, 16)).map((j) => j.revision);
        assert.deepEqual(await marked("a"), [1, 2, 6, 7]);
        assert.deepEqual(await marked("b"), [1, 2]);
      } finally {
        await store.close();
        await database.drop();
      }
    });

    test("getJob and jobExists scoped to a user answer undefined/false for another user's job", async (t) => {
      const { store } = await setup(t, dialect);
      const job = await store.createJob({ operationType: "op", username: "bob" });
      assert.equal(await store.getJob(job.jobId, "alice"), undefined);
      assert.equal(await store.jobExists(job.jobId, "alice"), false);
      assert.equal((await store.getJob(job.jobId, "bob"))?.jobId, job.jobId);
      assert.equal(await store.jobExists(job.jobId, "bob"), true);
      assert.equal((await store.getJob(job.jobId))?.jobId, job.jobId);
    });
  });
}

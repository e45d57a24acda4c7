// Store test helpers: a hand-moved clock, fresh stores on a dialect, jobs driven into a status, fault hooks.

import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import type { CompiledQuery, DatabaseConnection, Kysely } from "kysely";
import { sql } from "kysely";
import { FailedPreconditionError } from "../../src/errors.js";
import type { Database } from "../../src/store/database.js";
import type { Job, JobStatus } from "../../src/store/job.js";
import { createStore } from "../../src/store/open.js";
import type { SqlJobStore, SqlJobStoreOptions } from "../../src/store/sql-job-store.js";
import type { TestDialect } from "./databases.js";
import { freshDatabase } from "./databases.js";

/** A clock the tests move by hand, shared by every store of a test (like replicas with synced clocks). */
export class Clock {
  t = Date.UTC(2030, 0, 1);
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

/** A fresh migrated database with `count` stores on it (each its own connection or pool, like replicas). */
export async function setup(t: TestContext, dialect: TestDialect, count = 1, options: SqlJobStoreOptions = {}) {
  const database = await freshDatabase(dialect);
  const clock = new Clock();
  const stores: SqlJobStore[] = [];
  t.after(async () => {
    for (const s of stores) await s.close();
    await database.drop();
  });
  for (let i = 0; i < count; i++) stores.push(createStore(database.url, { ...options, now: clock.now }));
  await stores[0]!.migrate();
  return { store: stores[0]!, stores, clock, url: database.url };
}

/** Asserts a FailedPreconditionError naming `status` in upper case. */
export async function rejectsStatus(promise: Promise<unknown>, status: JobStatus, jobId: string): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof FailedPreconditionError, `expected FailedPreconditionError, got ${String(e)}`);
    assert.match(e.message, new RegExp(`\\b${status.toUpperCase()}\\b`));
    assert.equal(e.type, "STATUS");
    assert.equal(e.subject, jobId);
    return true;
  });
}

/** Event revisions of a job straight from job_events (feed and history), sorted. */
export async function eventRevisions(store: SqlJobStore, jobId: string): Promise<number[]> {
  const rows = await store.db.selectFrom("job_events").select("revision").where("job_id", "=", jobId).execute();
  return rows.map((r) => Number(r.revision)).sort((a, b) => a - b);
}

/** Drives a new job into `status`. */
export async function jobIn(store: SqlJobStore, status: JobStatus, user = "alice"): Promise<Job> {
  const job = await store.createJob({ operationType: "index_repo", username: user });
  switch (status) {
    case "pending":
      return job;
    case "running":
      return store.startJob(job.jobId);
    case "completed":
      await store.startJob(job.jobId);
      return store.completeJob(job.jobId, { files: 3 });
    case "failed":
      return store.failJob(job.jobId, "boom");
    case "cancelled":
      return store.cancelJob(job.jobId);
  }
}

/**
 * Runs `hook(query)` after every statement `db` (a store's Kysely, `store.db`) sends through its connection
 * (transaction statements included), while the caller awaits: a deterministic way to let another replica
 * write between them, or to fail a statement as a driver would.
 */
export function afterEachStatement(db: Kysely<Database>, hook: (query: CompiledQuery) => Promise<void>): void {
  const executor = db.getExecutor();
  const provide = executor.provideConnection.bind(executor);
  executor.provideConnection = <T>(consumer: (connection: DatabaseConnection) => Promise<T>): Promise<T> =>
    provide((connection) =>
      consumer({
        async executeQuery<R>(query: CompiledQuery) {
          const result = await connection.executeQuery<R>(query);
          await hook(query);
          return result;
        },
        streamQuery: (query, chunkSize) => connection.streamQuery(query, chunkSize),
      }),
    );
}

/** Makes the next job_events deletions fail once `allowed` rows have been deleted, like a process dying mid-sweep. */
export async function dieAfterDeleting(store: SqlJobStore, allowed: number): Promise<void> {
  if (store.dialect === "sqlite") {
    await sql`create table deleted_log (seq integer)`.execute(store.db);
    await sql
      .raw(
        `create trigger die_mid_sweep before delete on job_events begin
           select raise(abort, 'process died') where (select count(*) from deleted_log) >= ${allowed};
           insert into deleted_log values (old.seq);
         end`,
      )
      .execute(store.db);
  } else {
    await sql`create table deleted_log (seq bigint) engine=InnoDB`.execute(store.db);
    await sql
      .raw(
        `create trigger die_mid_sweep before delete on job_events for each row begin
           if (select count(*) from deleted_log) >= ${allowed} then
             signal sqlstate '45000' set message_text = 'process died';
           end if;
           insert into deleted_log values (old.seq);
         end`,
      )
      .execute(store.db);
  }
}

export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

// Sweep and retention queries: stale jobs, unconfirmed cancellations, expired jobs, feed-only events.
import { setImmediate as nextTurn } from "node:timers/promises";
import { applyCounts, moved } from "./counts.js";
import { applyHistogram, finishedRow } from "./duration-histogram.js";
import type { Job } from "./job.js";
import { TERMINAL_STATUSES } from "./job.js";
import { transition } from "./jobs.js";
import type { Rule } from "./lifecycle.js";
import { cancelUnconfirmedRule, failStaleRule } from "./lifecycle.js";
import type { StoreDb } from "./transaction.js";

/** Jobs a sweeper moves per call; the next sweep takes the rest. */
const SWEEP_BATCH = 500;
/** job_events rows per DELETE of pruneFeed on MySQL. */
const PRUNE_CHUNK = 5000;

/** RUNNING jobs with no heartbeat since before `staleBefore` -> FAILED; returns the jobs it moved. */
export async function failStaleJobs(db: StoreDb, staleBefore: number): Promise<Job[]> {
  const rows = await db.kysely
    .selectFrom("jobs")
    .select("job_id")
    .where("status", "=", "running")
    .where("last_heartbeat_at", "<", staleBefore)
    .orderBy("last_heartbeat_at")
    .limit(SWEEP_BATCH)
    .execute();
  return sweep(
    db,
    rows.map((r) => r.job_id),
    failStaleRule(staleBefore),
  );
}

/** RUNNING jobs whose cancellation was requested before `requestedBefore` -> CANCELLED; returns those moved. */
export async function cancelUnconfirmed(db: StoreDb, requestedBefore: number): Promise<Job[]> {
  const rows = await db.kysely
    .selectFrom("jobs")
    .select("job_id")
    .where("status", "=", "running")
    .where("cancel_requested_at", "<", requestedBefore)
    .where("cancel_requested", "=", 1)
    .orderBy("cancel_requested_at")
    .limit(SWEEP_BATCH)
    .execute();
  return sweep(
    db,
    rows.map((r) => r.job_id),
    cancelUnconfirmedRule(requestedBefore),
  );
}

/**
 * Deletes up to `batch` finished jobs completed before `before`, their events first in chunks of
 * `chunkRows` (each its own short transaction); returns how many jobs.
 */
export async function deleteExpired(db: StoreDb, before: number, batch: number, chunkRows: number): Promise<number> {
  // Ids first, then delete by id: MySQL cannot DELETE ... LIMIT with a subquery on the same table.
  const rows = await db.kysely
    .selectFrom("jobs")
    .select("job_id")
    .where("status", "in", [...TERMINAL_STATUSES])
    .where("completed_at", "<", before)
    // No ORDER BY: any expired batch will do, and sorting every expired row would cost more than the delete.
    .limit(batch)
    .execute();
  if (rows.length === 0) return 0;
  const ids = rows.map((r) => r.job_id);
  const k = db.kysely;
  // Their events first, a bounded chunk per statement and transaction: a job that reported progress
  // every second has hundreds of thousands, and one transaction over all of them would hold its
  // locks (MySQL) or the write lock (SQLite) for as long. A job row goes only after its events, so
  // a sweep cut short leaves the job expired and the next sweep carries on.
  for (;;) {
    const deleted = await db.write(function* () {
      const r = yield k.deleteFrom("job_events").where("job_id", "in", ids).limit(chunkRows).compile();
      return Number(r.numAffectedRows ?? 0);
    });
    if (deleted < chunkRows) break;
    // SQLite writes run synchronously: let other callers in between chunks.
    await nextTurn();
  }
  // Their webhook outbox too (a few rows per job: one per matching webhook and status reached).
  await db.write(function* () {
    const outbox = k.selectFrom("webhook_deliveries").select("delivery_seq").where("job_id", "in", ids);
    yield k.deleteFrom("webhook_attempts").where("delivery_seq", "in", outbox).compile();
    yield k.deleteFrom("webhook_deliveries").where("job_id", "in", ids).compile();
  });
  return db.write(function* () {
    // What job_counts and duration_histogram lose: a finished job never changes again, so these are the
    // rows deleted below.
    const gone = (yield k
      .selectFrom("jobs")
      .select(["job_id", "username", "operation_type", "status", "completed_at", "started_at", "created_at"])
      .where("job_id", "in", ids)
      .where("status", "in", [...TERMINAL_STATUSES])
      .compile()).rows as (Parameters<typeof finishedRow>[0] & { job_id: string; operation_type: string })[];
    // Guarded by status as well, so this statement can only ever remove a finished job.
    const r = yield k
      .deleteFrom("jobs")
      .where("job_id", "in", ids)
      .where("status", "in", [...TERMINAL_STATUSES])
      .compile();
    const counts = applyCounts(
      db.dialect,
      gone.flatMap((g) =>
        moved({ jobId: g.job_id, username: g.username, operationType: g.operation_type }, g.status, null),
      ),
    );
    if (counts) yield counts;
    const histogram = applyHistogram(db.dialect, gone.map(finishedRow), -1);
    if (histogram) yield histogram;
    return Number(r.numAffectedRows ?? 0);
  });
}

/** Deletes feed-only (unrecorded) events older than `before`; returns how many. */
export async function pruneFeed(db: StoreDb, before: number): Promise<number> {
  const base = db.kysely.deleteFrom("job_events").where("recorded", "=", 0).where("at", "<", before);
  // Through write transactions, like every write: a lock conflict is retried, never thrown raw.
  const deleteSome = (q: typeof base): Promise<number> =>
    db.write(function* () {
      return Number((yield q.compile()).numAffectedRows ?? 0);
    });
  if (db.dialect === "sqlite") return deleteSome(base);
  // MySQL: in batches, so no single statement holds locks on a large part of the table.
  let total = 0;
  for (;;) {
    const n = await deleteSome(base.limit(PRUNE_CHUNK));
    total += n;
    if (n < PRUNE_CHUNK) return total;
  }
}

/** Applies `rule` to each job of `ids` (re-read, conditionally updated); returns the jobs it changed. */
async function sweep(db: StoreDb, ids: string[], rule: Rule): Promise<Job[]> {
  const moved: Job[] = [];
  for (const id of ids) {
    const outcome = await transition(db, id, rule);
    if (outcome?.changed) moved.push(outcome.job);
  }
  return moved;
}

// Statistics queries: counts by status and operation (from job_counts), and the window's success and duration percentiles.
import { sql } from "kysely";
import { JOB_STATUSES } from "./job.js";
import type { JobStatus } from "./job.js";
import type { JobStatistics } from "./store.js";
import { firstColumn } from "./transaction.js";
import type { StoreDb } from "./transaction.js";

/** Windows with at most this many finished jobs have their durations sorted in this process (default). */
export const SORT_IN_PROCESS_MAX = 100_000;

/** A finished job's duration: from start (or creation, if it never started) to finish, in ms. */
const duration = sql<number | string>`completed_at - coalesce(started_at, created_at)`.as("d");

/**
 * The rank (1-based, in ascending order) of the p-th percentile of n values, by the nearest-rank method:
 * the smallest value such that at least p% of the values are less than or equal to it, ceil(p/100 * n).
 * With 0.5 s and 1.1 s, p50 is 0.5 s and p95 is 1.1 s. Integer arithmetic, so no rounding error moves it.
 */
export function nearestRank(percent: number, n: number): number {
  return Math.max(1, Math.ceil((percent * n) / 100));
}

/**
 * The figures of `username`'s jobs (every user's when undefined); durations over the last `windowMs`.
 * The counts read job_counts (a few rows per user, whatever the number of jobs); the window's figures
 * read only the jobs finished in it, through the covering indexes jobs_(user_)completed_window.
 */
export async function getStatistics(
  db: StoreDb,
  username: string | undefined,
  windowMs: number,
  sortInProcessMax = SORT_IN_PROCESS_MAX,
): Promise<JobStatistics> {
  const windowStart = db.now() - windowMs;
  const k = db.kysely;
  const counts = k
    .selectFrom("job_counts")
    .select(["status", "operation_type", (eb) => eb.fn.sum<number | string>("n").as("n")])
    .$if(username !== undefined, (q) => q.where("username", "=", username as string))
    .groupBy(["status", "operation_type"]);
  // Only finished jobs have completed_at; the covering index (completed_at, status, started_at, created_at)
  // serves this without reading a row.
  const finished = k
    .selectFrom("jobs")
    .$if(username !== undefined, (q) => q.where("username", "=", username as string))
    .where("completed_at", ">=", windowStart);
  // Every figure from one snapshot, so total, by-status and by-operation agree while jobs change.
  return db.read(function* () {
    const rows = (yield counts.compile()).rows as { status: string; operation_type: string; n: number | string }[];
    const byStatus = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
    const byOperationType: Record<string, number> = {};
    for (const r of rows) {
      const n = Number(r.n);
      if (n === 0) continue;
      if ((JOB_STATUSES as readonly string[]).includes(r.status)) byStatus[r.status as JobStatus] += n;
      byOperationType[r.operation_type] = (byOperationType[r.operation_type] ?? 0) + n;
    }
    const total = Object.values(byStatus).reduce((a, b) => a + b, 0);
    capOperationTypes(byOperationType);

    const window = (yield finished
      .select([
        (eb) => eb.fn.countAll<number | string>().as("n"),
        sql<number | string | null>`sum(case when status = 'completed' then 1 else 0 end)`.as("completed"),
      ])
      .compile()).rows[0] as { n: number | string; completed: number | string | null };
    const finishedInWindow = Number(window.n);
    const completedInWindow = Number(window.completed ?? 0);
    const ranks = [nearestRank(50, finishedInWindow), nearestRank(95, finishedInWindow)] as const;
    let percentiles: [number | null, number | null] = [null, null];
    if (finishedInWindow > 0 && finishedInWindow <= sortInProcessMax) {
      // One more read of the same index range, sorted here: cheaper than the database sorting it twice.
      const result = yield firstColumn(finished.select(duration).compile());
      const values = result.column ?? result.rows.map((r) => r.d);
      const durations = new Float64Array(values.length);
      for (let i = 0; i < values.length; i++) durations[i] = Number(values[i]);
      durations.sort();
      percentiles = [durations[ranks[0] - 1] ?? null, durations[ranks[1] - 1] ?? null];
    } else if (finishedInWindow > 0) {
      // A window of very many jobs: the database sorts, and this process never holds them all.
      for (const [i, rank] of ranks.entries()) {
        const row = (yield finished
          .select(duration)
          .orderBy("d")
          .limit(1)
          .offset(rank - 1)
          .compile()).rows[0] as { d: number | string } | undefined;
        percentiles[i] = row ? Number(row.d) : null;
      }
    }
    return {
      byStatus,
      total,
      byOperationType,
      windowStart,
      finishedInWindow,
      completedInWindow,
      p50DurationMs: percentiles[0],
      p95DurationMs: percentiles[1],
    };
  });
}

/** At most this many operation types are named in the statistics; the rest are summed under OTHER_TYPES. */
export const MAX_OPERATION_TYPES = 100;
/** The key of the jobs of the types beyond the largest MAX_OPERATION_TYPES (no operation type can be spelled so). */
export const OTHER_TYPES = "(other)";

/**
 * Keeps the largest MAX_OPERATION_TYPES types (by count, then name) and sums the rest under OTHER_TYPES, so
 * the reply stays small however many distinct types workers create.
 */
function capOperationTypes(byType: Record<string, number>): void {
  const entries = Object.entries(byType);
  if (entries.length <= MAX_OPERATION_TYPES) return;
  entries.sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0));
  let other = 0;
  for (const [type, n] of entries.slice(MAX_OPERATION_TYPES)) {
    other += n;
    delete byType[type];
  }
  byType[OTHER_TYPES] = other;
}

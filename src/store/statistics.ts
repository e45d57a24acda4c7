// Statistics queries: counts by status and operation (from job_counts), and the window's success and duration
// percentiles, of every type and of the largest types (from duration_histogram, exact for a small window).
import { sql } from "kysely";
import { EVERY_USER_KEYS } from "./counts.js";
import { BucketCounts, bucketOf, EVERY_TYPE, EVERY_USER, SLICE_MS } from "./duration-histogram.js";
import type { JobStatus } from "./job.js";
import { JOB_STATUSES } from "./job.js";
import type { JobStatistics, Percentiles, StatisticsOptions } from "./store.js";
import type { StoreDb } from "./transaction.js";

/**
 * Windows with at most this many finished jobs get exact percentiles: their durations are read and sorted
 * here. Larger ones are ranked from duration_histogram, within its RELATIVE_ERROR (default).
 */
const EXACT_PERCENTILES_MAX = 2000;

/** A finished job's duration: from start (or creation, if it never started) to finish, in ms. */
const duration = sql<number | string>`completed_at - coalesce(started_at, created_at)`.as("d");

/**
 * The rank (1-based, in ascending order) of the p-th percentile of n values, by the nearest-rank method:
 * the smallest value such that at least p% of the values are less than or equal to it, ceil(p/100 * n).
 * With 0.5 s and 1.1 s, p50 is 0.5 s and p95 is 1.1 s. Integer arithmetic, so no rounding error moves it.
 */
function nearestRank(percent: number, n: number): number {
  return Math.max(1, Math.ceil((percent * n) / 100));
}

/**
 * The figures of `username`'s jobs (every user's when undefined); durations over the last `windowMs`.
 * The counts read job_counts (a few rows per user, or the every-user rows, whatever the number of jobs). The window's figures
 * read duration_histogram for its whole hours (a counter per hour and duration bucket, of every type and of
 * each of the MAX_DURATION_TYPES largest types) and the jobs finished in the part of an hour before them (at
 * most an hour of completions, through the covering indexes jobs_(user_)completed_window): the counts are
 * exact; the percentiles, overall and per type, are exact when at most `exactMax` jobs finished in the window
 * (their durations read and sorted) and within RELATIVE_ERROR above. The per-type percentiles only with
 * `options.durationsByOperationType` (they cost several times the rest); without, durationsByOperationType is {}.
 */
export async function getStatistics(
  db: StoreDb,
  username: string | undefined,
  windowMs: number,
  options: StatisticsOptions = {},
  exactMax = EXACT_PERCENTILES_MAX,
): Promise<JobStatistics> {
  const windowStart = db.now() - windowMs;
  // The first whole hour of the window: from here on the histogram counts, before it the jobs are read.
  const histogramFrom = Math.ceil(windowStart / SLICE_MS) * SLICE_MS;
  const k = db.kysely;
  const counts = k
    .selectFrom("job_counts")
    .select(["status", "operation_type", (eb) => eb.fn.sum<number | string>("n").as("n")])
    .where("username", "in", username === undefined ? [...EVERY_USER_KEYS] : [username])
    .groupBy(["status", "operation_type"]);
  // The every-type rows for the window's figures, each named type's rows for its percentiles.
  const histogram = (types: readonly string[]) =>
    k
      .selectFrom("duration_histogram")
      .select([
        "operation_type",
        "bucket",
        (eb) => eb.fn.sum<number | string>("n").as("n"),
        (eb) => eb.fn.sum<number | string>("completed").as("completed"),
      ])
      .where("username", "=", username ?? EVERY_USER)
      .where("operation_type", "in", [EVERY_TYPE, ...types])
      .where("slice_start", ">=", histogramFrom)
      .groupBy(["operation_type", "bucket"]);
  // Only finished jobs have completed_at; the covering index (completed_at, status, operation_type,
  // started_at, created_at) serves these without reading a row.
  const finished = k
    .selectFrom("jobs")
    .$if(username !== undefined, (q) => q.where("username", "=", username as string))
    .where("completed_at", ">=", windowStart);
  const edge = finished.where("completed_at", "<", histogramFrom).select(["status", "operation_type", duration]);
  // Every figure from one snapshot, so total, by-status, by-operation and the window agree while jobs change.
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
    const durationTypes = options.durationsByOperationType ? largestTypes(byOperationType, MAX_DURATION_TYPES) : [];
    capOperationTypes(byOperationType);

    // Every type's buckets under EVERY_TYPE, and each of durationTypes' under its name.
    const buckets = new Map<string, BucketCounts>([[EVERY_TYPE, new BucketCounts()]]);
    for (const type of durationTypes) buckets.set(type, new BucketCounts());
    const all = buckets.get(EVERY_TYPE)!;
    let completedInWindow = 0;
    for (const r of (yield histogram(durationTypes).compile()).rows as {
      operation_type: string;
      bucket: number;
      n: number | string;
      completed: number | string;
    }[]) {
      buckets.get(r.operation_type)?.add(Number(r.bucket), Number(r.n));
      if (r.operation_type === EVERY_TYPE) completedInWindow += Number(r.completed);
    }
    for (const r of (yield edge.compile()).rows as { status: string; operation_type: string; d: number | string }[]) {
      const bucket = bucketOf(Number(r.d));
      all.add(bucket, 1);
      buckets.get(r.operation_type)?.add(bucket, 1);
      if (r.status === "completed") completedInWindow++;
    }
    const finishedInWindow = all.total;
    const percentiles = new Map<string, Percentiles>();
    if (finishedInWindow > exactMax) {
      for (const [type, b] of buckets) {
        if (b.total === 0) continue;
        const [p50, p95] = [b.atRank(nearestRank(50, b.total)), b.atRank(nearestRank(95, b.total))];
        percentiles.set(type, { finished: b.total, p50DurationMs: p50 ?? 0, p95DurationMs: p95 ?? 0 });
      }
    } else if (finishedInWindow > 0) {
      // A small window: one more read of its index range, sorted here, for the exact figures.
      const exact = (yield finished.select(["operation_type", duration]).compile()).rows as {
        operation_type: string;
        d: number | string;
      }[];
      const byType = new Map<string, number[]>([[EVERY_TYPE, []]]);
      for (const type of durationTypes) byType.set(type, []);
      for (const r of exact) {
        const d = Number(r.d);
        byType.get(EVERY_TYPE)!.push(d);
        byType.get(r.operation_type)?.push(d);
      }
      for (const [type, list] of byType) {
        if (list.length === 0) continue;
        const durations = Float64Array.from(list).sort();
        percentiles.set(type, {
          finished: durations.length,
          p50DurationMs: durations[nearestRank(50, durations.length) - 1]!,
          p95DurationMs: durations[nearestRank(95, durations.length) - 1]!,
        });
      }
    }
    const overall = percentiles.get(EVERY_TYPE);
    percentiles.delete(EVERY_TYPE);
    return {
      byStatus,
      total,
      byOperationType,
      windowStart,
      finishedInWindow,
      completedInWindow,
      p50DurationMs: overall?.p50DurationMs ?? null,
      p95DurationMs: overall?.p95DurationMs ?? null,
      durationsByOperationType: Object.fromEntries(percentiles),
    };
  });
}

/**
 * At most this many operation types get their own duration percentiles: the types with the most jobs in
 * scope (by count, then name), so the histogram read stays a few types' counters however many types exist.
 */
const MAX_DURATION_TYPES = 20;

/** The `n` largest types of `byType` (by count, then name). */
function largestTypes(byType: Record<string, number>, n: number): string[] {
  return Object.entries(byType)
    .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, n)
    .map(([type]) => type);
}

/** At most this many operation types are named in the statistics; the rest are summed under OTHER_TYPES. */
const MAX_OPERATION_TYPES = 100;
/** The key of the jobs of the types beyond the largest MAX_OPERATION_TYPES (no operation type can be spelled so). */
const OTHER_TYPES = "(other)";

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

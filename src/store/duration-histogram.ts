// duration_histogram: the durations of finished jobs as a DDSketch-style histogram per user, operation type and
// hour of completion, changed by the same transaction as the jobs it counts, so GetJobStatistics ranks a window of
// a million jobs from a few thousand counters instead of reading and sorting every duration in it.

import type { Kysely } from "kysely";
import { CompiledQuery } from "kysely";
import type { Dialect } from "./connect.js";
import type { Database } from "./database.js";
import { IDENTIFIER_QUOTE } from "./sql-names.js";

/**
 * The relative error of a percentile read from the histogram: the value it reports is within 1% of the
 * exact (nearest-rank) duration, for durations of 1 ms and more (durations of 0 ms are exact).
 */
const RELATIVE_ERROR = 0.01;
/** DDSketch's gamma: bucket i >= 1 holds the durations d with gamma^(i-2) < d <= gamma^(i-1) (ms). */
const GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR);
const LOG_GAMMA = Math.log(GAMMA);
/** Completions are counted per hour (of completed_at): a window's whole hours are read from the histogram. */
export const SLICE_MS = 3_600_000;
/** The username of the rows that count every user's jobs (no username can be empty). */
export const EVERY_USER = "";
/** The operation_type of the rows that count every type's jobs (no operation type can be empty). */
export const EVERY_TYPE = "";

/** The bucket of a duration in ms: 0 for 0 ms (and less), else 1 + ceil(log_gamma(d)). */
export function bucketOf(durationMs: number): number {
  if (durationMs <= 0) return 0;
  return 1 + Math.ceil(Math.log(durationMs) / LOG_GAMMA);
}

/** The duration a bucket stands for: within RELATIVE_ERROR of every duration in it. */
function bucketValue(bucket: number): number {
  if (bucket <= 0) return 0;
  return (2 * GAMMA ** (bucket - 1)) / (GAMMA + 1);
}

/** The start of the hour that holds `at` (epoch ms). */
function sliceOf(at: number): number {
  return Math.floor(at / SLICE_MS) * SLICE_MS;
}

/** A finished job as the histogram counts it. */
export interface Finished {
  username: string;
  operationType: string;
  status: string;
  completedAt: number;
  /** completed_at - coalesce(started_at, created_at). */
  durationMs: number;
}

/** A finished job (of the store, or the columns of its row) as the histogram counts it. */
export function finishedOf(job: {
  username: string;
  operationType: string;
  status: string;
  completedAt: number | null;
  startedAt: number | null;
  createdAt: number;
}): Finished {
  const completedAt = job.completedAt ?? job.createdAt;
  return {
    username: job.username,
    operationType: job.operationType,
    status: job.status,
    completedAt,
    durationMs: completedAt - (job.startedAt ?? job.createdAt),
  };
}

/** A change of one counter: `delta` more (or fewer) finished jobs, `completed` of them COMPLETED. */
interface HistogramDelta {
  username: string;
  operationType: string;
  slice: number;
  bucket: number;
  n: number;
  completed: number;
}

/**
 * The one statement that adds `finished` (sign +1: they just finished; -1: they are being deleted) to the
 * histogram, each to four rows: its user's and every user's, each for its operation type and for every
 * type; none when there is nothing to add. Rows
 * are written in key order, so two transactions lock shared counters in the same order (no deadlock).
 */
export function applyHistogram(
  dialect: Dialect,
  finished: readonly Finished[],
  sign: 1 | -1,
): CompiledQuery | undefined {
  const merged = new Map<string, HistogramDelta>();
  for (const f of finished) {
    const slice = sliceOf(f.completedAt);
    const bucket = bucketOf(f.durationMs);
    const completed = f.status === "completed" ? sign : 0;
    for (const username of [f.username, EVERY_USER]) {
      for (const operationType of [f.operationType, EVERY_TYPE]) {
        const key = JSON.stringify([username, operationType, slice, bucket]);
        const seen = merged.get(key);
        if (seen) {
          seen.n += sign;
          seen.completed += completed;
        } else merged.set(key, { username, operationType, slice, bucket, n: sign, completed });
      }
    }
  }
  if (merged.size === 0) return undefined;
  const rows = [...merged.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, d]) => d);
  const q = IDENTIFIER_QUOTE[dialect];
  const upsert =
    dialect === "mysql"
      ? `on duplicate key update ${q}n${q} = ${q}n${q} + values(${q}n${q}), ${q}completed${q} = ${q}completed${q} + values(${q}completed${q})`
      : `on conflict (${q}username${q}, ${q}operation_type${q}, ${q}slice_start${q}, ${q}bucket${q}) do update set ${q}n${q} = ${q}n${q} + excluded.${q}n${q}, ${q}completed${q} = ${q}completed${q} + excluded.${q}completed${q}`;
  const columns = ["username", "operation_type", "slice_start", "bucket", "n", "completed"]
    .map((c) => q + c + q)
    .join(", ");
  return CompiledQuery.raw(
    `insert into ${q}duration_histogram${q} (${columns}) values ${rows.map(() => "(?, ?, ?, ?, ?, ?)").join(", ")} ${upsert}`,
    rows.flatMap((d) => [d.username, d.operationType, d.slice, d.bucket, d.n, d.completed]),
  );
}

/** Counts of durations by bucket, merged from the histogram's rows and exact durations. */
export class BucketCounts {
  readonly #counts = new Map<number, number>();
  #total = 0;

  /** `n` more durations in `bucket`. */
  add(bucket: number, n: number): void {
    if (n === 0) return;
    this.#counts.set(bucket, (this.#counts.get(bucket) ?? 0) + n);
    this.#total += n;
  }

  /** How many durations were added. */
  get total(): number {
    return this.#total;
  }

  /**
   * The duration at 1-based rank `rank` of the durations in ascending order, within RELATIVE_ERROR: the
   * value of the bucket that holds it. null when there are fewer durations.
   */
  atRank(rank: number): number | null {
    let seen = 0;
    for (const bucket of [...this.#counts.keys()].sort((a, b) => a - b)) {
      seen += this.#counts.get(bucket)!;
      if (seen >= rank) return bucketValue(bucket);
    }
    return null;
  }
}

/** finishedOf() of a jobs row's columns (numbers may come back as strings from MySQL). */
export function finishedRow(r: {
  username: string;
  operation_type: string;
  status: string;
  completed_at: number | string | null;
  started_at: number | string | null;
  created_at: number | string;
}): Finished {
  return finishedOf({
    username: r.username,
    operationType: r.operation_type,
    status: r.status,
    completedAt: r.completed_at === null ? null : Number(r.completed_at),
    startedAt: r.started_at === null ? null : Number(r.started_at),
    createdAt: Number(r.created_at),
  });
}

/** Rows of one INSERT when the histogram is built from the jobs table. */
const REBUILD_ROWS_PER_INSERT = 500;

/**
 * Builds duration_histogram from the finished jobs in the jobs table (migration 0012; the query bench,
 * which fills jobs behind the store's back). Aggregated here, bucketed by the same function as every
 * completion, so the histogram agrees with what the store writes later.
 */
export async function rebuildDurationHistogram(db: Kysely<Database>, dialect: Dialect): Promise<void> {
  await db.deleteFrom("duration_histogram").execute();
  const rows = await db
    .selectFrom("jobs")
    .select(["username", "operation_type", "status", "completed_at", "started_at", "created_at"])
    .where("completed_at", "is not", null)
    .execute();
  const finished = rows.map(finishedRow);
  // Merged per counter first (applyHistogram merges within one statement only), then inserted in chunks.
  const merged = new Map<string, Finished[]>();
  for (const f of finished) {
    const key = JSON.stringify([
      f.username,
      f.operationType,
      sliceOf(f.completedAt),
      bucketOf(f.durationMs),
      f.status === "completed",
    ]);
    const list = merged.get(key);
    if (list) list.push(f);
    else merged.set(key, [f]);
  }
  let chunk: Finished[] = [];
  let keys = 0;
  const flush = async (): Promise<void> => {
    const statement = applyHistogram(dialect, chunk, 1);
    if (statement) await db.executeQuery(statement);
    chunk = [];
    keys = 0;
  };
  for (const list of merged.values()) {
    chunk.push(...list);
    // Four counters per key (user or every user, by type and every type): under either database's limit.
    if (++keys >= REBUILD_ROWS_PER_INSERT / 4) await flush();
  }
  await flush();
}

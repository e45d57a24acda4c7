// Statistics queries: counts by status and operation, success and duration percentiles, from one snapshot.
import { sql } from "kysely";
import type { CompiledQuery } from "kysely";
import { JOB_STATUSES, TERMINAL_STATUSES } from "./job.js";
import type { JobStatus } from "./job.js";
import type { JobStatistics } from "./store.js";
import type { StatementResult, StoreDb } from "./transaction.js";

/** The figures of `username`'s jobs (every user's when undefined); durations over the last `windowMs`. */
export async function getStatistics(
  db: StoreDb,
  username: string | undefined,
  windowMs: number,
): Promise<JobStatistics> {
  const windowStart = db.now() - windowMs;
  const scoped = db.kysely
    .selectFrom("jobs")
    .$if(username !== undefined, (q) => q.where("username", "=", username as string));
  const finished = scoped.where("status", "in", [...TERMINAL_STATUSES]).where("completed_at", ">=", windowStart);
  // Every figure from one snapshot, so total, by-status and by-operation agree while jobs change;
  // each is one aggregate row or one row per group, never the jobs themselves.
  return db.read(function* () {
    const statusRows = (yield scoped
      .select(["status", (eb) => eb.fn.countAll<number | string>().as("n")])
      .groupBy("status")
      .compile()).rows as { status: string; n: number | string }[];
    const byStatus = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
    for (const r of statusRows) {
      if ((JOB_STATUSES as readonly string[]).includes(r.status)) byStatus[r.status as JobStatus] = Number(r.n);
    }
    const total = Object.values(byStatus).reduce((a, b) => a + b, 0);

    const opRows = (yield scoped
      .select(["operation_type", (eb) => eb.fn.countAll<number | string>().as("n")])
      .groupBy("operation_type")
      .compile()).rows as { operation_type: string; n: number | string }[];
    const byOperationType: Record<string, number> = {};
    for (const r of opRows) byOperationType[r.operation_type] = Number(r.n);

    const counts = (yield finished
      .select([
        (eb) => eb.fn.countAll<number | string>().as("n"),
        sql<number | string | null>`sum(case when status = 'completed' then 1 else 0 end)`.as("completed"),
      ])
      .compile()).rows[0] as { n: number | string; completed: number | string | null };
    const finishedInWindow = Number(counts.n);
    const completedInWindow = Number(counts.completed ?? 0);

    // Percentiles by rank in SQL (one row each), never by loading the durations.
    function* percentile(p: number): Generator<CompiledQuery, number | null, StatementResult> {
      if (finishedInWindow === 0) return null;
      const row = (yield finished
        .select(sql<number | string>`completed_at - coalesce(started_at, created_at)`.as("d"))
        .orderBy("d")
        .limit(1)
        .offset(Math.floor(p * (finishedInWindow - 1)))
        .compile()).rows[0] as { d: number | string } | undefined;
      return row ? Number(row.d) : null;
    }
    return {
      byStatus,
      total,
      byOperationType,
      windowStart,
      finishedInWindow,
      completedInWindow,
      p50DurationMs: yield* percentile(0.5),
      p95DurationMs: yield* percentile(0.95),
    };
  });
}

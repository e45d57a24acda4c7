// The history behind completion estimates: the timing of an operation type's most recent COMPLETED jobs.
import type { FinishedRun } from "./job.js";
import type { StoreDb } from "./transaction.js";

/**
 * The last `limit` COMPLETED jobs of `operationType` that ran (started_at set), newest first. One range
 * read of the index jobs_type_status_completed, at most `limit` rows of four small columns.
 */
export async function recentRuns(db: StoreDb, operationType: string, limit: number): Promise<FinishedRun[]> {
  const rows = await db.kysely
    .selectFrom("jobs")
    .select(["resource", "created_at", "started_at", "completed_at"])
    .where("operation_type", "=", operationType)
    .where("status", "=", "completed")
    .where("completed_at", "is not", null)
    .orderBy("completed_at", "desc")
    .limit(limit)
    .execute();
  const runs: FinishedRun[] = [];
  for (const r of rows) {
    if (r.started_at === null || r.completed_at === null) continue;
    runs.push({
      resource: r.resource,
      createdAt: Number(r.created_at),
      startedAt: Number(r.started_at),
      completedAt: Number(r.completed_at),
    });
  }
  return runs;
}

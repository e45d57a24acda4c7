// Jobs and statistics in the shapes the MCP tools return: the seed's job object (lowercase statuses,
// ISO 8601 times, null for what is not there) and the statistics figures with durations in seconds.
import { type Job, type JobStatistics, statusName } from "../client/index.js";

/** The seed's `job` object of get_job_details. */
export interface SeedJob {
  job_id: string;
  operation_type: string;
  status: string;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  progress: number;
  result: Record<string, unknown> | null;
  error: string | null;
  username: string;
}

/** A Job as the seed's job object. */
export function seedJob(job: Job): SeedJob {
  if (job.createdAt === undefined) throw new Error(`the server sent job ${job.jobId} without created_at`);
  return {
    job_id: job.jobId,
    operation_type: job.operationType,
    status: statusName(job.status).toLowerCase(),
    created_at: job.createdAt.toISOString(),
    started_at: job.startedAt?.toISOString() ?? null,
    completed_at: job.completedAt?.toISOString() ?? null,
    progress: job.progress,
    result: job.result ?? null,
    error: job.error ?? null,
    username: job.username,
  };
}

/** The statistics object of get_job_statistics. */
export function statisticsJson(stats: JobStatistics): Record<string, unknown> {
  // Number(): the counts are int64, which the generated code may hand over as numbers, strings or bigints.
  const byOperation: Record<string, number> = {};
  for (const [operation, count] of Object.entries(stats.byOperationType)) byOperation[operation] = Number(count);
  return {
    active: Number(stats.active),
    pending: Number(stats.pending),
    running: Number(stats.running),
    completed: Number(stats.completed),
    failed: Number(stats.failed),
    cancelled: Number(stats.cancelled),
    total: Number(stats.total),
    by_operation_type: byOperation,
    window_start: stats.windowStart?.toISOString() ?? null,
    finished_in_window: Number(stats.finishedInWindow),
    success_rate: stats.successRate,
    p50_duration_seconds: seconds(stats.p50Duration),
    p95_duration_seconds: seconds(stats.p95Duration),
    durations_by_operation_type: Object.fromEntries(
      Object.entries(stats.durationsByOperationType).map(([operation, d]) => [
        operation,
        {
          finished: Number(d.finished),
          p50_duration_seconds: seconds(d.p50Duration),
          p95_duration_seconds: seconds(d.p95Duration),
        },
      ]),
    ),
  };
}

function seconds(duration: { seconds: number | bigint | string; nanos: number } | undefined): number | null {
  return duration === undefined ? null : Number(duration.seconds) + duration.nanos / 1e9;
}

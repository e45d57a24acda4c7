// Which jobs a WatchJobs stream follows, and what one change of a job means to it (changed, removed, nothing).

import type { Job, JobStatus } from "../store/job.js";
import { isTerminal } from "../store/job.js";

/** A WatchJobs filter; every part that is set must match. */
export interface JobsFilter {
  /** Any of these statuses; empty = any status. */
  statuses: ReadonlySet<JobStatus>;
  operationType?: string | undefined;
  /** One user's jobs; undefined = every user's (manage_jobs). */
  username?: string | undefined;
  resource?: string | undefined;
  /** Created at or after, epoch ms. */
  createdAfter?: number | undefined;
}

/** What a change of a job means to a stream. */
export type ChangeKind = "changed" | "removed";

/** True when the parts of the filter that never change for a job (all but status) match. */
function fixedFieldsMatch(filter: JobsFilter, job: Job): boolean {
  return (
    (filter.username === undefined || job.username === filter.username) &&
    (filter.operationType === undefined || job.operationType === filter.operationType) &&
    (filter.resource === undefined || job.resource === filter.resource) &&
    (filter.createdAfter === undefined || job.createdAt >= filter.createdAfter)
  );
}

/** True when the job matches the filter now. */
export function matches(filter: JobsFilter, job: Job): boolean {
  return fixedFieldsMatch(filter, job) && (filter.statuses.size === 0 || filter.statuses.has(job.status));
}

/**
 * The status this revision of the job moved it from, or undefined when this revision did not change its
 * status. Read from the job alone: the store stamps started_at (PENDING -> RUNNING) and completed_at
 * (-> a terminal status) with the time of the revision that made the move, and a terminal job was RUNNING
 * before exactly when it has a started_at.
 */
function statusChangedFrom(job: Job): JobStatus | undefined {
  if (job.status === "running") return job.startedAt === job.updatedAt ? "pending" : undefined;
  if (isTerminal(job.status) && job.completedAt === job.updatedAt) {
    return job.startedAt === null ? "pending" : "running";
  }
  return undefined;
}

/**
 * What one change means to a stream with this filter: "changed" when the job matches (a job that starts
 * matching, e.g. enters RUNNING, is a change too), "removed" on the one revision at which it leaves the
 * filter's statuses, undefined when the stream does not care. Needs no memory of what the stream sent, so
 * a stream resumed on another replica decides exactly as the one it replaces.
 */
export function classifyChange(filter: JobsFilter, job: Job): ChangeKind | undefined {
  if (!fixedFieldsMatch(filter, job)) return undefined;
  if (filter.statuses.size === 0 || filter.statuses.has(job.status)) return "changed";
  const from = statusChangedFrom(job);
  return from !== undefined && filter.statuses.has(from) ? "removed" : undefined;
}

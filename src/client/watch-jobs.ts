// WatchJobs as an AsyncIterable of events that survives disconnects (resume from the last cursor) and an
// expired cursor (start again from a fresh snapshot, telling the caller with a "reset" event).
import { type ClientReadableStream, status } from "@grpc/grpc-js";
import type { Job, JobStatus } from "../gen/jobwatch/v1/job.js";
import { WatchJobsEventType, type WatchJobsRequest, type WatchJobsResponse } from "../gen/jobwatch/v1/job_service.js";
import { type ResumeOptions, resumable } from "./resumable-stream.js";

/** Which jobs to follow; parts combine with AND. */
export interface JobsWatchFilter {
  /** Only jobs in any of these statuses. */
  statuses?: JobStatus[];
  /** Only jobs of this operation type. */
  operationType?: string;
  /** Only this user's jobs (another user's needs manage_jobs); default: the caller's. */
  username?: string;
  /** Every user's jobs (needs manage_jobs). */
  allUsers?: boolean;
  /** Only jobs acting on this resource. */
  resource?: string;
  /** Only jobs created at or after this time. */
  createdAfter?: Date;
}

/** One event of watchJobs. */
export type JobsWatchEvent =
  /** A job that matched when the stream (re)started from a snapshot. */
  | { type: "snapshot"; job: Job; cursor: string }
  /** The snapshot is complete: what you hold is the current state; changes follow. */
  | { type: "synced"; cursor: string }
  /** A matching job changed or started to match. */
  | { type: "changed"; job: Job; cursor: string }
  /** A job stopped matching (its status left the filter); drop it. */
  | { type: "removed"; job: Job; cursor: string }
  /** The server no longer had the changes after the last cursor: drop every job you hold; a snapshot follows. */
  | { type: "reset"; reason: string };

/** Where a WatchJobs resumes: after the last cursor it handed over ("" starts with a snapshot). */
export interface CursorPosition {
  cursor: string;
}

/** Options of watchJobs: the reconnect options every watch takes (as watchJob's), and where to start. */
export interface JobsWatchOptions extends ResumeOptions<CursorPosition> {
  /** Resume after this cursor (from an earlier event) instead of starting with a snapshot. */
  afterCursor?: string;
}

/** Opens one WatchJobs stream; the watch calls it again for every reconnect. */
export type OpenJobsStream = (request: WatchJobsRequest) => ClientReadableStream<WatchJobsResponse>;

/**
 * Yields the jobs matching the filter and then every change, for as long as the caller iterates. On a
 * dropped connection or UNAVAILABLE it reconnects with backoff and resumes after the last cursor it saw
 * (bookmarks included), so no change is missed or repeated; on OUT_OF_RANGE (the cursor is older than the
 * server keeps changes) it yields "reset" and starts again from a snapshot. Other errors end it
 * (resumable-stream.ts, the core watchJob shares).
 */
export function resumableJobsWatch(
  open: OpenJobsStream,
  path: string,
  filter: JobsWatchFilter,
  options: JobsWatchOptions = {},
): AsyncGenerator<JobsWatchEvent, void, undefined> {
  let cursor = options.afterCursor ?? "";
  // Snapshot events handed over before SYNCED: a cursor from inside a snapshot cannot give back the rest of
  // it, so a break there restarts the snapshot (after a "reset").
  let partialSnapshot = false;
  const base: WatchJobsRequest = {
    statuses: filter.statuses ?? [],
    operationType: filter.operationType ?? "",
    username: filter.username ?? "",
    allUsers: filter.allUsers ?? false,
    resource: filter.resource ?? "",
    createdAfter: filter.createdAfter,
    afterCursor: "",
  };
  return resumable<WatchJobsResponse, JobsWatchEvent, CursorPosition>(
    {
      path,
      open: () => {
        partialSnapshot = false;
        return open({ ...base, afterCursor: cursor });
      },
      position: () => ({ cursor }),
      receive(message) {
        // The cursor moves as the message is handed over (the core yields its events before the next one).
        if (message.type === WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_SNAPSHOT) partialSnapshot = true;
        else {
          partialSnapshot = false;
          if (message.cursor !== "") cursor = message.cursor;
        }
        return { items: toEvents(message) };
      },
      // WatchJobs does not end by itself; an OK end means the server closed it: resume.
      endedOk: () => false,
      recover(error) {
        if (error.code !== status.OUT_OF_RANGE || cursor === "") return undefined;
        cursor = "";
        return [{ type: "reset", reason: error.message }];
      },
      beforeReopen() {
        if (!partialSnapshot) return [];
        cursor = "";
        return [{ type: "reset", reason: "the stream broke during its snapshot; starting it again" }];
      },
    },
    options,
  );
}

/** The events one message stands for (a snapshot page is one event per job; a bookmark none). */
function toEvents(message: WatchJobsResponse): JobsWatchEvent[] {
  const { cursor } = message;
  switch (message.type) {
    case WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_SNAPSHOT:
      return message.jobs.map((job) => ({ type: "snapshot", job, cursor }));
    case WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_SYNCED:
      return [{ type: "synced", cursor }];
    case WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_CHANGED:
      return message.jobs.map((job) => ({ type: "changed", job, cursor }));
    case WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_REMOVED:
      return message.jobs.map((job) => ({ type: "removed", job, cursor }));
    default:
      return [];
  }
}

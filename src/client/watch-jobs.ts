// WatchJobs as an AsyncIterable of events that survives disconnects (resume from the last cursor) and an
// expired cursor (start again from a fresh snapshot, telling the caller with a "reset" event).
import { setTimeout as sleep } from "node:timers/promises";
import { status, type ClientReadableStream } from "@grpc/grpc-js";
import type { Job, JobStatus } from "../gen/jobwatch/v1/job.js";
import { WatchJobsEventType, type WatchJobsRequest, type WatchJobsResponse } from "../gen/jobwatch/v1/job_service.js";
import { backoffDelay, type BackoffOptions } from "./backoff.js";
import { abortReason } from "./call.js";
import { idempotencyOf } from "./contract.js";
import { JobwatchClientError, toClientError } from "./errors.js";
import { isRetryable } from "./retry.js";

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

/** Options of watchJobs. */
export interface JobsWatchOptions {
  /** Resume after this cursor (from an earlier event) instead of starting with a snapshot. */
  afterCursor?: string;
  /** Ends the watch: the iterator rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Reconnect timing (default: from 100 ms doubling up to 5 s, with jitter). */
  backoff?: BackoffOptions;
  /** Called before each reconnect; return false to stop and throw the error instead. */
  onRetry?: (event: { error: JobwatchClientError; attempt: number; delayMs: number }) => boolean | void;
  /** Called each time a stream reaches the server (its response headers arrived), the first time included. */
  onConnected?: () => void;
}

/** Opens one WatchJobs stream; the watch calls it again for every reconnect. */
export type OpenJobsStream = (request: WatchJobsRequest) => ClientReadableStream<WatchJobsResponse>;

/**
 * Yields the jobs matching the filter and then every change, for as long as the caller iterates. On a
 * dropped connection or UNAVAILABLE it reconnects with backoff and resumes after the last cursor it saw
 * (bookmarks included), so no change is missed or repeated; on OUT_OF_RANGE (the cursor is older than the
 * server keeps changes) it yields "reset" and starts again from a snapshot. Other errors end it.
 */
export async function* resumableJobsWatch(
  open: OpenJobsStream,
  path: string,
  filter: JobsWatchFilter,
  options: JobsWatchOptions = {},
): AsyncGenerator<JobsWatchEvent, void, undefined> {
  const { signal } = options;
  const idempotency = idempotencyOf(path);
  let cursor = options.afterCursor ?? "";
  let attempt = 0;
  const base: WatchJobsRequest = {
    statuses: filter.statuses ?? [],
    operationType: filter.operationType ?? "",
    username: filter.username ?? "",
    allUsers: filter.allUsers ?? false,
    resource: filter.resource ?? "",
    createdAfter: filter.createdAfter,
    afterCursor: "",
  };
  for (;;) {
    signal?.throwIfAborted();
    const call = open({ ...base, afterCursor: cursor });
    let cancelledByUs = false;
    const onAbort = (): void => {
      cancelledByUs = true;
      call.cancel();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    call.once("metadata", () => options.onConnected?.());
    let failure: JobwatchClientError;
    // Snapshot events handed over in this attempt before SYNCED: a cursor from inside a snapshot cannot
    // give back the rest of it, so a break there restarts the snapshot (after a "reset").
    let partialSnapshot = false;
    try {
      for await (const message of call as AsyncIterable<WatchJobsResponse>) {
        attempt = 0;
        const events = toEvents(message);
        // The cursor moves only once the events of the message are handed over.
        for (const e of events) yield e;
        if (message.type === WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_SNAPSHOT) {
          partialSnapshot = true;
          continue;
        }
        partialSnapshot = false;
        if (message.cursor !== "") cursor = message.cursor;
      }
      // WatchJobs does not end by itself; an OK end means the server closed it: resume.
      failure = new JobwatchClientError("the server ended the stream", status.UNAVAILABLE);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const typed = toClientError(err);
      if (!(typed instanceof JobwatchClientError)) throw typed;
      if (typed.code === status.OUT_OF_RANGE && cursor !== "") {
        cursor = "";
        yield { type: "reset", reason: typed.message };
        continue;
      }
      // The client's one retry rule (retry.ts), as for WatchJob. RESOURCE_EXHAUSTED (too many watches, or
      // a reader far behind) is the caller's to handle: resuming at once would repeat it.
      if (!isRetryable({ code: typed.code, message: typed.message, cancelledByUs }, idempotency)) throw typed;
      failure = typed;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      cancelledByUs = true;
      call.on("error", () => undefined);
      call.cancel();
    }
    const delayMs = backoffDelay(attempt, options.backoff);
    attempt += 1;
    if (options.onRetry?.({ error: failure, attempt, delayMs }) === false) throw failure;
    await sleep(delayMs, undefined, { signal }).catch(abortReason(signal));
    if (partialSnapshot) {
      cursor = "";
      yield { type: "reset", reason: "the stream broke during its snapshot; starting it again" };
    }
  }
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

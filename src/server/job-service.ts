// JobService: the read side (GetJobDetails, WatchJob, ListJobs, GetJobStatistics, GetJobHistory) and CancelJob.
import { createHash } from "node:crypto";
import { Metadata } from "@grpc/grpc-js";
import type { ServerWritableStream } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { canManageJobs, principalOf } from "../auth/principal.js";
import type { Principal } from "../auth/principal.js";
import { InvalidArgumentError, PermissionDeniedError, jobNotFound } from "../errors.js";
import type {
  CancelJobResponse,
  GetJobDetailsResponse,
  GetJobHistoryResponse,
  GetJobStatisticsResponse,
  JobServiceServer,
  ListJobsRequest,
  ListJobsResponse,
  WatchJobRequest,
  WatchJobResponse,
} from "../gen/jobwatch/v1/job_service.js";
import { Job as ProtoJob, JobStatus as ProtoJobStatus } from "../gen/jobwatch/v1/job.js";
import { JOB_STATUSES } from "../store/job.js";
import type { Job, JobStatus } from "../store/job.js";
import type { JobStore, ListJobsQuery } from "../store/store.js";
import { errorToStatus, unaryHandler } from "./error-status.js";
import {
  durationToMs,
  jobEventToProto,
  jobToProto,
  msToDuration,
  statusFromProto,
  statusToProto,
} from "./job-mapper.js";
import { RequestValidator } from "./validate.js";
import type { JobFeed } from "../watch/job-feed.js";

/** What JobService needs. */
export interface JobServiceDeps {
  /** A publishing store (src/watch/publishing-store.ts), so CancelJob's change reaches watchers at once. */
  store: JobStore;
  hub: Pick<JobFeed, "watch" | "closing">;
  log: Logger;
}

/** The statistics window when the request sets none. */
export const DEFAULT_STATISTICS_WINDOW_MS = 24 * 60 * 60 * 1000;

/** True when the principal may see the job: their own, or any with manage_jobs. */
export function canSee(principal: Principal, job: Job): boolean {
  return job.username === principal.username || canManageJobs(principal);
}

/** The job if it exists and the caller may see it; otherwise the one NOT_FOUND. */
async function visibleJob(store: JobStore, principal: Principal, jobId: string): Promise<Job> {
  const job = await store.getJob(jobId);
  if (job === undefined || !canSee(principal, job)) throw jobNotFound(jobId);
  return job;
}

/**
 * The username a ListJobs or GetJobStatistics query is scoped to: with manage_jobs the requested one
 * (empty: every user), without it always the caller's own, and naming someone else is PERMISSION_DENIED.
 * `what` names the refused action in the message, e.g. "listing another user's jobs".
 */
function scopedUsername(principal: Principal, requested: string, what: string): string | undefined {
  if (canManageJobs(principal)) return requested === "" ? undefined : requested;
  if (requested !== "" && requested !== principal.username) {
    throw new PermissionDeniedError(
      `permission denied: ${what} needs permission 'manage_jobs'; leave username empty for your own jobs`,
      "manage_jobs",
    );
  }
  return principal.username;
}

// --- ListJobs page tokens ----------------------------------------------------------------------------

/** What a ListJobs page token carries: where the previous page ended, and which query it belongs to. */
interface PageCursor {
  createdAt: number;
  jobId: string;
  filterHash: string;
}

/** Filters that a page token is bound to (everything but the page size and the token itself). */
type ListFilters = Omit<ListJobsQuery, "limit" | "after">;

/** A short digest of the effective filters, so a token from another query is recognized. */
function filterHash(filters: ListFilters): string {
  const canonical = JSON.stringify([
    filters.username ?? null,
    filters.statuses ? [...filters.statuses].sort() : null,
    filters.operationType ?? null,
    filters.createdAfter ?? null,
    filters.createdBefore ?? null,
  ]);
  return createHash("sha256").update(canonical).digest("base64url").slice(0, 22);
}

/** Encodes a cursor as an opaque token (base64url of JSON). */
function encodePageToken(cursor: PageCursor): string {
  return Buffer.from(JSON.stringify(cursor), "utf8").toString("base64url");
}

/** Longer page tokens are refused unread. */
const MAX_PAGE_TOKEN_CHARS = 1024;

const FOREIGN_TOKEN =
  "was issued for a query with other filters; repeat the filters of the first page (statuses, operation_type, created_after, created_before, username) or start again without page_token";
const MALFORMED_TOKEN =
  "is not a next_page_token of ListJobs; pass next_page_token unchanged, or leave it empty for the first page";

/** Decodes a token and checks it belongs to these filters. */
function decodePageToken(token: string, hash: string): PageCursor {
  // A real token is about 120 characters; a huge one is not worth decoding.
  if (token.length > MAX_PAGE_TOKEN_CHARS) throw InvalidArgumentError.field("page_token", MALFORMED_TOKEN);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw InvalidArgumentError.field("page_token", MALFORMED_TOKEN);
  }
  const c = parsed as Partial<PageCursor> | null;
  if (
    typeof c !== "object" ||
    c === null ||
    typeof c.createdAt !== "number" ||
    !Number.isSafeInteger(c.createdAt) ||
    typeof c.jobId !== "string" ||
    typeof c.filterHash !== "string"
  ) {
    throw InvalidArgumentError.field("page_token", MALFORMED_TOKEN);
  }
  if (c.filterHash !== hash) throw InvalidArgumentError.field("page_token", FOREIGN_TOKEN);
  return { createdAt: c.createdAt, jobId: c.jobId, filterHash: c.filterHash };
}

/**
 * Bytes of jobs one ListJobs page carries at most. Every gRPC client accepts 4 MiB by default; a page
 * of 100 jobs with 62 KB results was 6.9 MB. One job is always sent (the write limits keep it well under
 * the budget), so paging always moves on.
 */
export const LIST_PAGE_BYTES = 1 << 20;

/** The leading jobs whose encoding fits in LIST_PAGE_BYTES (at least one). */
function withinReplyBudget(jobs: ProtoJob[]): ProtoJob[] {
  let bytes = 0;
  for (let i = 0; i < jobs.length; i++) {
    // Each job is a length-delimited field 1 of ListJobsResponse: a tag byte and a length before it.
    bytes += ProtoJob.encode(jobs[i]!).finish().length + 6;
    if (bytes > LIST_PAGE_BYTES && i > 0) return jobs.slice(0, i);
  }
  return jobs;
}

/** The statuses a ListJobs filter may name, as a user reads them in a message. */
const FILTER_STATUS_NAMES = JOB_STATUSES.map((s) => ProtoJobStatus[statusToProto(s)]).join(", ");

/**
 * ListJobs' statuses as store statuses; undefined (every status) when empty. UNSPECIFIED or an unknown
 * number is refused rather than ignored: dropping it would silently widen (or narrow) the filter.
 */
function statusFilter(v: RequestValidator, values: readonly ProtoJobStatus[]): JobStatus[] | undefined {
  if (values.length === 0) return undefined;
  // There are five statuses: a longer list is a client bug, and refusing it bounds the work and the error.
  if (values.length > JOB_STATUSES.length) {
    v.add(
      "statuses",
      `may name at most ${JOB_STATUSES.length} statuses (each of ${FILTER_STATUS_NAMES} once); got ${values.length} values`,
    );
    return undefined;
  }
  const mapped = new Set<JobStatus>();
  const bad: string[] = [];
  for (const value of values) {
    const status = statusFromProto(value);
    if (status !== undefined) mapped.add(status);
    else
      bad.push(value === ProtoJobStatus.JOB_STATUS_UNSPECIFIED ? "JOB_STATUS_UNSPECIFIED" : `unknown number ${value}`);
  }
  if (bad.length > 0) {
    v.add(
      "statuses",
      `may contain only ${FILTER_STATUS_NAMES}; leave it empty for every status; got ${bad.join(", ")}`,
    );
  }
  return [...mapped];
}

/** Validates ListJobs' filters and resolves the username scope from the caller's permissions. */
function listFilters(request: ListJobsRequest, principal: Principal): { filters: ListFilters; pageSize: number } {
  const v = new RequestValidator();
  const pageSize = v.pageSize(request.pageSize);
  const statuses = statusFilter(v, request.statuses);
  const operationType = request.operationType === "" ? undefined : v.operationType(request.operationType);
  const createdAfter = v.timestamp("created_after", request.createdAfter);
  const createdBefore = v.timestamp("created_before", request.createdBefore);
  if (createdAfter !== undefined && createdBefore !== undefined && createdAfter >= createdBefore) {
    v.add("created_after", "must be before created_before (created_after is inclusive, created_before exclusive)");
  }
  v.check();
  const username = scopedUsername(principal, request.username, "listing another user's jobs");
  return { filters: { username, statuses, operationType, createdAfter, createdBefore }, pageSize };
}

// --- WatchJob -----------------------------------------------------------------------------------------

/**
 * Resolves when the stream can take more ('drain'), the call is gone (signal aborted) or the server is
 * shutting down (closing aborted): then the watch's generator throws the UnavailableError that ends
 * the call, instead of the handler waiting on a client that does not read.
 */
function drained(
  call: ServerWritableStream<WatchJobRequest, WatchJobResponse>,
  signal: AbortSignal,
  closing: AbortSignal,
): Promise<void> {
  if (signal.aborted || closing.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      call.off("drain", done);
      signal.removeEventListener("abort", done);
      closing.removeEventListener("abort", done);
      resolve();
    };
    call.on("drain", done);
    signal.addEventListener("abort", done, { once: true });
    closing.addEventListener("abort", done, { once: true });
  });
}

/**
 * The WatchJobResponse of each store job object, made once. The hub hands the same object to every
 * watcher of a job, so a change is mapped once, not once per watcher; server.ts likewise encodes each
 * response object once. Weak: an entry lives as long as some watcher still holds the job.
 */
const watchResponses = new WeakMap<Job, WatchJobResponse>();

/** The (shared, never modified) response that carries `job`. */
function watchResponse(job: Job): WatchJobResponse {
  let response = watchResponses.get(job);
  if (response === undefined) {
    response = { job: jobToProto(job) };
    watchResponses.set(job, response);
  }
  return response;
}

/** The WatchJob handler: drives hub.watch(), writing each revision and honouring backpressure. */
function watchJobHandler(deps: JobServiceDeps) {
  const { hub, log } = deps;
  return (call: ServerWritableStream<WatchJobRequest, WatchJobResponse>): void => {
    const controller = new AbortController();
    const { signal } = controller;
    call.on("cancelled", () => controller.abort());
    // A cancel that arrived before the listener was attached would otherwise go unnoticed.
    if (call.cancelled) controller.abort();
    let ended = false;

    const fail = (error: unknown): void => {
      if (ended) return;
      ended = true;
      if (signal.aborted) return; // the client is gone: nobody to tell
      const status = errorToStatus(error, log, { path: call.getPath() });
      call.emit("error", status);
    };

    const run = async (): Promise<void> => {
      const request = call.request;
      const v = new RequestValidator();
      const jobId = v.jobId(request.jobId);
      const afterRevision = request.afterRevision;
      if (afterRevision !== undefined && afterRevision < 0) {
        v.add(
          "after_revision",
          `must not be negative; pass the last revision you received, or leave it unset; got ${afterRevision}`,
        );
      }
      v.check();
      const principal = principalOf(call.metadata);
      // Response headers at once: a client resuming after a reconnect learns it is connected again even
      // when the job does not change for a while.
      call.sendMetadata(new Metadata());
      const jobs = hub.watch(jobId, {
        afterRevision: afterRevision === 0 ? undefined : afterRevision,
        signal,
        canSee: (job) => canSee(principal, job),
      });
      // The hub ends the generator after a terminal revision (or at once when the client already has the
      // terminal one), and throws UnavailableError naming the revision to resume after at shutdown.
      for await (const job of jobs) {
        if (signal.aborted) break;
        if (!call.write(watchResponse(job))) await drained(call, signal, hub.closing);
        if (signal.aborted) break;
      }
      if (signal.aborted || ended) return;
      ended = true;
      call.end();
    };

    run().catch(fail);
  };
}

// --- the service --------------------------------------------------------------------------------------

/** JobService over a store and the watch hub. */
export function createJobService(deps: JobServiceDeps): JobServiceServer {
  const { store, log } = deps;

  return {
    getJobDetails: unaryHandler(log, async (request, call): Promise<GetJobDetailsResponse> => {
      const v = new RequestValidator();
      const jobId = v.jobId(request.jobId);
      v.check();
      const job = await visibleJob(store, principalOf(call.metadata), jobId);
      return { job: jobToProto(job) };
    }),

    watchJob: watchJobHandler(deps),

    listJobs: unaryHandler(log, async (request, call): Promise<ListJobsResponse> => {
      const principal = principalOf(call.metadata);
      const { filters, pageSize } = listFilters(request, principal);
      const hash = filterHash(filters);
      const after = request.pageToken === "" ? undefined : decodePageToken(request.pageToken, hash);
      // One more than the page tells whether a next page exists, so the last page has no token.
      const rows = await store.listJobs({
        ...filters,
        limit: pageSize + 1,
        after: after && { createdAt: after.createdAt, jobId: after.jobId },
      });
      const page = withinReplyBudget(rows.slice(0, pageSize).map(jobToProto));
      const last = page[page.length - 1];
      const nextPageToken =
        rows.length > page.length && last !== undefined
          ? encodePageToken({ createdAt: last.createdAt!.getTime(), jobId: last.jobId, filterHash: hash })
          : "";
      return { jobs: page, nextPageToken };
    }),

    getJobStatistics: unaryHandler(log, async (request, call): Promise<GetJobStatisticsResponse> => {
      const principal = principalOf(call.metadata);
      const v = new RequestValidator();
      const windowMs =
        request.window === undefined ? DEFAULT_STATISTICS_WINDOW_MS : v.statisticsWindow(durationToMs(request.window));
      v.check();
      const username = scopedUsername(principal, request.username, "counting another user's jobs");
      const stats = await store.getStatistics(username, windowMs);
      return {
        pending: stats.byStatus.pending,
        running: stats.byStatus.running,
        completed: stats.byStatus.completed,
        failed: stats.byStatus.failed,
        cancelled: stats.byStatus.cancelled,
        total: stats.total,
        active: stats.byStatus.running,
        byOperationType: { ...stats.byOperationType },
        windowStart: new Date(stats.windowStart),
        finishedInWindow: stats.finishedInWindow,
        successRate: stats.finishedInWindow > 0 ? stats.completedInWindow / stats.finishedInWindow : 0,
        p50Duration: stats.p50DurationMs === null ? undefined : msToDuration(stats.p50DurationMs),
        p95Duration: stats.p95DurationMs === null ? undefined : msToDuration(stats.p95DurationMs),
      };
    }),

    cancelJob: unaryHandler(log, async (request, call): Promise<CancelJobResponse> => {
      const v = new RequestValidator();
      const jobId = v.jobId(request.jobId);
      const reason = v.reason(request.reason);
      v.check();
      await visibleJob(store, principalOf(call.metadata), jobId);
      const job = await store.cancelJob(jobId, reason);
      return { job: jobToProto(job) };
    }),

    getJobHistory: unaryHandler(log, async (request, call): Promise<GetJobHistoryResponse> => {
      const v = new RequestValidator();
      const jobId = v.jobId(request.jobId);
      v.check();
      await visibleJob(store, principalOf(call.metadata), jobId);
      const events = await store.getHistory(jobId);
      return { events: events.map(jobEventToProto) };
    }),
  };
}

// JobService: the read side (GetJobDetails, WatchJob, ListJobs, GetJobStatistics, GetJobHistory) and CancelJob.
import type { Logger } from "pino";
import type { Principal } from "../auth/principal.js";
import { canSee, jobNotFoundFor, jobsScope, visibleTo } from "../auth/visibility.js";
import { durationToMs, msToDuration } from "../duration.js";
import { NotFoundError } from "../errors.js";
import { Job as ProtoJob, JobEvent as ProtoJobEvent } from "../gen/jobwatch/v1/job.js";
import type {
  CancelJobRequest,
  CancelJobResponse,
  GetJobDetailsRequest,
  GetJobDetailsResponse,
  GetJobHistoryRequest,
  GetJobHistoryResponse,
  GetJobStatisticsRequest,
  GetJobStatisticsResponse,
  JobServiceServer,
  ListJobsRequest,
  ListJobsResponse,
  WatchJobRequest,
  WatchJobResponse,
  WatchJobsRequest,
  WatchJobsResponse,
} from "../gen/jobwatch/v1/job_service.js";
import type { Job } from "../store/job.js";
import type { JobStore } from "../store/store.js";
import type { JobFeed } from "../watch/job-feed.js";
import type { PushHandler, ServerStreamingHandler, StreamingOptions, UnaryHandler } from "./call-adapters.js";
import { serverPushHandler, serverStreamingHandler, unaryHandler } from "./call-adapters.js";
import { jobEventToProto } from "./job-mapper.js";
import type { JobView } from "./job-view.js";
import { listFilters } from "./list-filters.js";
import { decodeHistoryToken, decodePageToken, encodeHistoryToken, encodePageToken, filterHash } from "./page-token.js";
import { detailsResponse, prepareWatchMessage, watchMessage } from "./shared-encoding.js";
import { RequestValidator } from "./validate.js";
import { watchJobs } from "./watch-jobs-rpc.js";

/** What JobService needs. */
export interface JobServiceDeps {
  /** A publishing store (src/watch/publishing-store.ts), so CancelJob's change reaches watchers at once. */
  store: JobStore;
  hub: Pick<JobFeed, "watch" | "watchJobs" | "bookmarkMs" | "closing">;
  /** How jobs are mapped to the wire, with their completion estimate. */
  view: JobView;
  log: Logger;
  /** How WatchJob and WatchJobs streams are admitted (limits) and ended early (revoked credentials). */
  streams?: Pick<StreamingOptions, "admit" | "watchCredentials">;
}

/** The statistics window when the request sets none. */
const DEFAULT_STATISTICS_WINDOW_MS = 24 * 60 * 60 * 1000;

/**
 * The job if it exists and the caller may see it; otherwise the one NOT_FOUND. Visibility is part of the
 * query, so another user's job is refused before its result or error is read or decoded.
 */
async function visibleJob(store: JobStore, principal: Principal, jobId: string): Promise<Job> {
  const job = await store.getJob(jobId, visibleTo(principal));
  if (job === undefined || !canSee(principal, job)) throw jobNotFoundFor(principal, jobId);
  return job;
}

/** Throws the one NOT_FOUND unless the job exists and the caller may see it; reads no large column. */
async function mustSee(store: JobStore, principal: Principal, jobId: string): Promise<void> {
  if (!(await store.jobExists(jobId, visibleTo(principal)))) throw jobNotFoundFor(principal, jobId);
}

/**
 * Bytes of jobs one ListJobs page carries at most. Every gRPC client accepts 4 MiB by default; a page
 * of 100 jobs with 62 KB results was 6.9 MB. One job is always sent (the write limits keep it well under
 * the budget), so paging always moves on.
 */
const LIST_PAGE_BYTES = 1 << 20;

/** The leading items (jobs, history events) whose encoding fits in LIST_PAGE_BYTES (at least one). */
function withinReplyBudget<T>(items: T[], codec: { encode(item: T): { finish(): Uint8Array } }): T[] {
  let bytes = 0;
  for (let i = 0; i < items.length; i++) {
    // Each item is a length-delimited field of the response: a tag byte and a length before it.
    bytes += codec.encode(items[i]!).finish().length + 6;
    if (bytes > LIST_PAGE_BYTES && i > 0) return items.slice(0, i);
  }
  return items;
}

/** GetJobHistory's page sizes: events are small (about 100 bytes), so pages are larger than ListJobs'. */
const HISTORY_PAGE = { default: 500, max: 1000 } as const;

/**
 * JobService's rpcs as jobwatch writes them, before any transport: gRPC serves them through the call
 * adapters (createJobService), the web dashboard through Connect (src/web/connect-routes.ts).
 */
export interface JobServiceHandlers {
  getJobDetails: UnaryHandler<GetJobDetailsRequest, GetJobDetailsResponse>;
  /** Pushed, not pulled (see serverPushHandler); the web dashboard pulls it through pushAsStream. */
  watchJob: PushHandler<WatchJobRequest, WatchJobResponse>;
  watchJobs: ServerStreamingHandler<WatchJobsRequest, WatchJobsResponse>;
  listJobs: UnaryHandler<ListJobsRequest, ListJobsResponse>;
  getJobStatistics: UnaryHandler<GetJobStatisticsRequest, GetJobStatisticsResponse>;
  cancelJob: UnaryHandler<CancelJobRequest, CancelJobResponse>;
  getJobHistory: UnaryHandler<GetJobHistoryRequest, GetJobHistoryResponse>;
}

/** JobService over a store and the watch hub, as grpc-js handlers. */
export function createJobService(deps: JobServiceDeps): JobServiceServer {
  const { log, hub } = deps;
  const h = jobServiceHandlers(deps);
  // At shutdown a stream waiting for a client that does not read pulls the hub's UnavailableError.
  const streaming = { ...deps.streams, closing: hub.closing };
  return {
    getJobDetails: unaryHandler(log, h.getJobDetails),
    watchJob: serverPushHandler(log, h.watchJob, deps.streams),
    watchJobs: serverStreamingHandler(log, h.watchJobs, streaming),
    listJobs: unaryHandler(log, h.listJobs),
    getJobStatistics: unaryHandler(log, h.getJobStatistics),
    cancelJob: unaryHandler(log, h.cancelJob),
    getJobHistory: unaryHandler(log, h.getJobHistory),
  };
}

/** JobService's handlers over a store and the watch hub (see JobServiceHandlers). */
export function jobServiceHandlers(deps: Omit<JobServiceDeps, "log" | "streams">): JobServiceHandlers {
  const { store, hub, view } = deps;

  return {
    getJobDetails: async (request, { principal }): Promise<GetJobDetailsResponse> => {
      const v = new RequestValidator();
      const jobId = v.jobId(request.jobId);
      v.check();
      const job = await visibleJob(store, principal, jobId);
      // Shared by the calls that read this job in the same turn (the store hands them one Job object).
      return detailsResponse(job, view);
    },

    // Pushed, not pulled: the hub writes each change's bytes (made once per revision for every watcher)
    // straight to the call, and resumes the watch on 'drain'.
    watchJob: (request, context) => {
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
      const { principal } = context;
      // Response headers at once: a client resuming after a reconnect learns it is connected again even
      // when the job does not change for a while.
      context.sendHeader();
      // The hub ends after a terminal revision (or at once when the client already has the terminal
      // one), and fails with UnavailableError naming the revision to resume after at shutdown.
      const watch = hub.watch(
        jobId,
        {
          afterRevision: afterRevision === 0 ? undefined : afterRevision,
          signal: context.signal,
          canSee: (job) => canSee(principal, job),
          visibleTo: visibleTo(principal),
          // A quiet job still gets a message every bookmark interval, naming the newest revision sent.
          quietMs: hub.bookmarkMs,
        },
        {
          prepare: (job) => prepareWatchMessage(job, view),
          send: (job) => context.write(watchMessage(job) as Buffer),
          bookmark: (revision) => context.write({ job: undefined, bookmarkRevision: revision }),
          end: context.end,
          // The hub's NOT_FOUND knows no caller; the one GetJobDetails sends says which jobs this caller sees.
          fail: (error) => context.fail(error instanceof NotFoundError ? jobNotFoundFor(principal, jobId) : error),
        },
      );
      context.onDrain(watch.resume);
    },

    watchJobs: watchJobs(hub, view),

    listJobs: async (request, { principal }): Promise<ListJobsResponse> => {
      const { filters: requested, pageSize } = listFilters(request);
      const username = jobsScope(principal, request, "listing");
      const filters = { ...requested, username };
      const hash = filterHash(filters);
      const after = request.pageToken === "" ? undefined : decodePageToken(request.pageToken, hash);
      // One more than the page tells whether a next page exists, so the last page has no token.
      const rows = await store.listJobs({
        ...filters,
        limit: pageSize + 1,
        after: after && { createdAt: after.createdAt, jobId: after.jobId },
      });
      const page = withinReplyBudget(await view.toProtos(rows.slice(0, pageSize)), ProtoJob);
      const last = page[page.length - 1];
      const nextPageToken =
        rows.length > page.length && last !== undefined
          ? encodePageToken({ createdAt: last.createdAt!.getTime(), jobId: last.jobId, filterHash: hash })
          : "";
      return { jobs: page, nextPageToken };
    },

    getJobStatistics: async (request, { principal }): Promise<GetJobStatisticsResponse> => {
      const v = new RequestValidator();
      const windowMs =
        request.window === undefined ? DEFAULT_STATISTICS_WINDOW_MS : v.statisticsWindow(durationToMs(request.window));
      v.check();
      const username = jobsScope(principal, request, "counting");
      const stats = await store.getStatistics(username, windowMs, {
        durationsByOperationType: request.includeDurationsByOperationType,
      });
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
        durationsByOperationType: Object.fromEntries(
          Object.entries(stats.durationsByOperationType).map(([type, d]) => [
            type,
            {
              finished: d.finished,
              p50Duration: msToDuration(d.p50DurationMs),
              p95Duration: msToDuration(d.p95DurationMs),
            },
          ]),
        ),
      };
    },

    cancelJob: async (request, { principal }): Promise<CancelJobResponse> => {
      const v = new RequestValidator();
      const jobId = v.jobId(request.jobId);
      const reason = v.reason(request.reason);
      v.check();
      await mustSee(store, principal, jobId);
      const job = await store.cancelJob(jobId, reason);
      return { job: await view.toProto(job) };
    },

    getJobHistory: async (request, { principal }): Promise<GetJobHistoryResponse> => {
      const v = new RequestValidator();
      const jobId = v.jobId(request.jobId);
      const pageSize = v.pageSize(request.pageSize, HISTORY_PAGE);
      v.check();
      const afterRevision = request.pageToken === "" ? 0 : decodeHistoryToken(request.pageToken, jobId);
      await mustSee(store, principal, jobId);
      // One more than the page tells whether a next page exists, so the last page has no token.
      const rows = await store.getHistory(jobId, { afterRevision, limit: pageSize + 1 });
      const events = withinReplyBudget(rows.slice(0, pageSize).map(jobEventToProto), ProtoJobEvent);
      const last = events.at(-1);
      const nextPageToken =
        rows.length > events.length && last !== undefined ? encodeHistoryToken(jobId, last.revision) : "";
      return { events, nextPageToken };
    },
  };
}

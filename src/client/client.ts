// createClient: the typed jobwatch client (JobService reads, a resumable watch, the worker calls) on one channel.
import {
  type ChannelCredentials,
  type ChannelOptions,
  Client,
  type ClientReadableStream,
  credentials,
  status,
} from "@grpc/grpc-js";
import { durationToMs, msToDuration } from "../duration.js";
import type { Job, JobEvent, JobStatus } from "../gen/jobwatch/v1/job.js";
import {
  type GetJobStatisticsResponse,
  JobServiceService as rpcs,
  type WatchJobRequest,
  type WatchJobResponse,
  type WatchJobsRequest,
  type WatchJobsResponse,
} from "../gen/jobwatch/v1/job_service.js";
import { authMetadata, type CallContext, type CallOptions, type RetryOptions, requireJob, unaryCall } from "./call.js";
import { DeadlineExceededError, JobwatchClientError } from "./errors.js";
import { isTerminalStatus, statusName } from "./status.js";
import { sslCredentials, type TlsOptions } from "./tls-credentials.js";
import { resumableWatch, type WatchOptions } from "./watch.js";
import { type JobsWatchEvent, type JobsWatchFilter, type JobsWatchOptions, resumableJobsWatch } from "./watch-jobs.js";
import { createWebhookClient, type WebhookClient } from "./webhooks.js";
import { createWorkerClient, type WorkerClient } from "./worker.js";

export type { TlsOptions };

/** Options of createClient. */
export interface ClientOptions {
  /** host:port of a jobwatch server, e.g. "127.0.0.1:50051". */
  address: string;
  /** An API token (`jobwatch token create`); sent as `authorization: Bearer <token>`. */
  token?: string | undefined;
  /** Connect with TLS (default: plaintext). */
  tls?: boolean | TlsOptions;
  /** Deadline of each unary call, in ms (default 30000). */
  callTimeoutMs?: number;
  /** Retries of unary calls against an unavailable server (default 3 attempts). */
  retry?: RetryOptions;
  /** Extra grpc-js channel options; they override the client's defaults. */
  channelOptions?: ChannelOptions;
}

/** Filters and page of listJobs; filters combine with AND. */
export interface ListJobsFilter {
  /** Only jobs in any of these statuses. */
  statuses?: JobStatus[];
  /** Only jobs of this operation type. */
  operationType?: string;
  /** Only jobs created at or after this time. */
  createdAfter?: Date;
  /** Only jobs created before this time. */
  createdBefore?: Date;
  /** Only this user's jobs (another user's needs manage_jobs); default: the caller's own. */
  username?: string;
  /** Every user's jobs (needs manage_jobs; not with username). */
  allUsers?: boolean;
  /** Jobs per page: default 50, at most 100. */
  pageSize?: number;
  /** The nextPageToken of the previous page, with the same filters. */
  pageToken?: string;
}

/** What getStatistics counts: the scope as listJobs', and the window. */
export interface StatisticsQuery {
  /** Only this user's jobs (another user's needs manage_jobs); default: the caller's own. */
  username?: string;
  /** Every user's jobs (needs manage_jobs; not with username). */
  allUsers?: boolean;
  /** How far back the finished-job figures look, in ms (default 24 h). */
  windowMs?: number;
  /** Also durationsByOperationType (p50/p95 of the 20 largest types; costs the server more). Default false. */
  includeDurationsByOperationType?: boolean;
}

/** One page of listJobs. */
export interface JobPage {
  /** Newest first. */
  jobs: Job[];
  /** Pass as pageToken for the next page; undefined on the last page. */
  nextPageToken: string | undefined;
}

/** Options of waitForJob. */
export interface WaitOptions extends Omit<WatchOptions, "afterRevision"> {
  /** Give up after this many ms with a DeadlineExceededError (default: wait as long as it takes). */
  timeout?: number;
  /** Called with every revision seen on the way, the final one included. */
  onUpdate?: (job: Job) => void;
}

/** A jobwatch client. Every method rejects with a typed error (JobNotFoundError, UnavailableError ...). */
export interface JobwatchClient {
  /** The server address the client talks to. */
  readonly address: string;
  /** The current state of one job. */
  getJob(jobId: string, options?: CallOptions): Promise<Job>;
  /**
   * The job at each new revision until it ends (the current state first unless afterRevision is given);
   * reconnects and resumes by itself when the server goes away.
   */
  watchJob(jobId: string, options?: WatchOptions): AsyncGenerator<Job, void, undefined>;
  /**
   * Every job matching the filter ("snapshot" events, then "synced"), then each change ("changed", or
   * "removed" when a job leaves the filter), for as long as you iterate; resumes by itself after
   * disconnects, and yields "reset" and a fresh snapshot when the server no longer has the changes missed.
   */
  watchJobs(filter?: JobsWatchFilter, options?: JobsWatchOptions): AsyncGenerator<JobsWatchEvent, void, undefined>;
  /** Resolves with the job once it is COMPLETED, FAILED or CANCELLED. */
  waitForJob(jobId: string, options?: WaitOptions): Promise<Job>;
  /** One page of the caller's jobs (one user's with username, every user's with allUsers), newest first. */
  listJobs(filter?: ListJobsFilter, options?: CallOptions): Promise<JobPage>;
  /** Every job matching the filter, page after page. */
  listAllJobs(filter?: Omit<ListJobsFilter, "pageToken">, options?: CallOptions): AsyncGenerator<Job, void, undefined>;
  /**
   * Counts per status and operation type, success rate and durations in a window (default 24 h), of the
   * caller's jobs (one user's with username, every user's with allUsers).
   */
  getStatistics(query?: StatisticsQuery, options?: CallOptions): Promise<GetJobStatisticsResponse>;
  /** Cancels a job: PENDING ends CANCELLED at once; RUNNING gets cancelRequested for its worker. */
  cancelJob(jobId: string, options?: CallOptions & { reason?: string }): Promise<Job>;
  /** The job's recorded changes, oldest first (every page of them). */
  getHistory(jobId: string, options?: CallOptions): Promise<JobEvent[]>;
  /** The worker calls (need report_jobs). */
  readonly worker: WorkerClient;
  /** The webhook calls (need manage_webhooks). */
  readonly webhooks: WebhookClient;
  /** Closes the connection; calls after this fail. */
  close(): void;
}

// Keepalive pings find a connection that died silently (a server host gone, a NAT dropping state), so a
// watch that would otherwise wait forever on a dead socket reconnects. The reconnect backoff is kept
// short so a restarted server is found again within seconds, not grpc-js's default of up to two minutes.
const DEFAULT_CHANNEL_OPTIONS: ChannelOptions = {
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.initial_reconnect_backoff_ms": 200,
  "grpc.max_reconnect_backoff_ms": 5_000,
};

/** Connects to a jobwatch server (lazily: the first call opens the connection). */
export function createClient(options: ClientOptions): JobwatchClient {
  const channelOptions = { ...DEFAULT_CHANNEL_OPTIONS, ...options.channelOptions };
  // One channel for both services: calls are made by path (see call.ts), not through generated stubs.
  const channel = new Client(options.address, channelCredentials(options.tls), channelOptions);
  const ctx: CallContext = {
    channel,
    token: options.token,
    callTimeoutMs: options.callTimeoutMs ?? 30_000,
    retry: { maxAttempts: options.retry?.maxAttempts ?? 3, backoff: options.retry?.backoff },
  };

  const client: JobwatchClient = {
    address: options.address,

    async getJob(jobId, callOptions) {
      return requireJob(await unaryCall(ctx, rpcs.getJobDetails, { jobId }, callOptions));
    },

    watchJob(jobId, watchOptions) {
      const { path, requestSerialize, responseDeserialize } = rpcs.watchJob;
      const open = (request: WatchJobRequest): ClientReadableStream<WatchJobResponse> =>
        channel.makeServerStreamRequest(path, requestSerialize, responseDeserialize, request, authMetadata(ctx.token));
      return resumableWatch(open, path, jobId, watchOptions);
    },

    watchJobs(filter = {}, watchOptions) {
      const { path, requestSerialize, responseDeserialize } = rpcs.watchJobs;
      const open = (request: WatchJobsRequest): ClientReadableStream<WatchJobsResponse> =>
        channel.makeServerStreamRequest(path, requestSerialize, responseDeserialize, request, authMetadata(ctx.token));
      return resumableJobsWatch(open, path, filter, watchOptions);
    },

    async waitForJob(jobId, waitOptions = {}) {
      const { timeout, onUpdate, ...watchOptions } = waitOptions;
      const timer = timeout === undefined ? undefined : AbortSignal.timeout(timeout);
      const signals = [waitOptions.signal, timer].filter((s): s is AbortSignal => s !== undefined);
      const signal = signals.length === 0 ? undefined : AbortSignal.any(signals);
      let last: Job | undefined;
      try {
        for await (const seen of client.watchJob(jobId, { ...watchOptions, signal })) {
          last = seen;
          onUpdate?.(seen);
        }
        if (last === undefined || !isTerminalStatus(last.status)) {
          // The watch ends without yielding the final revision when the caller's afterRevision already was
          // it (a JS caller can pass one through): the job is finished, so read it once.
          last = await client.getJob(jobId, { signal });
          if (!isTerminalStatus(last.status)) {
            throw new JobwatchClientError(`the watch of job ${jobId} ended before the job did`, status.UNKNOWN);
          }
          onUpdate?.(last);
        }
        return last;
      } catch (err) {
        if (timer?.aborted && !waitOptions.signal?.aborted) {
          const where = last === undefined ? "" : ` (last seen ${statusName(last.status)} at ${last.progress}%)`;
          throw new DeadlineExceededError(
            `job ${jobId} did not finish within ${timeout} ms${where}`,
            status.DEADLINE_EXCEEDED,
          );
        }
        throw err;
      }
    },

    async listJobs(filter = {}, callOptions) {
      const request = {
        statuses: filter.statuses ?? [],
        operationType: filter.operationType ?? "",
        createdAfter: filter.createdAfter,
        createdBefore: filter.createdBefore,
        username: filter.username ?? "",
        allUsers: filter.allUsers ?? false,
        pageSize: filter.pageSize ?? 0,
        pageToken: filter.pageToken ?? "",
      };
      const response = await unaryCall(ctx, rpcs.listJobs, request, callOptions);
      return { jobs: response.jobs, nextPageToken: response.nextPageToken || undefined };
    },

    async *listAllJobs(filter = {}, callOptions) {
      let pageToken: string | undefined;
      do {
        const page = await client.listJobs({ ...filter, ...(pageToken ? { pageToken } : {}) }, callOptions);
        yield* page.jobs;
        pageToken = page.nextPageToken;
      } while (pageToken !== undefined);
    },

    async getStatistics(query = {}, callOptions) {
      const request = {
        username: query.username ?? "",
        allUsers: query.allUsers ?? false,
        window: query.windowMs === undefined ? undefined : msToDuration(query.windowMs),
        includeDurationsByOperationType: query.includeDurationsByOperationType ?? false,
      };
      return unaryCall(ctx, rpcs.getJobStatistics, request, callOptions);
    },

    async cancelJob(jobId, callOptions = {}) {
      const request = { jobId, reason: callOptions.reason };
      return requireJob(await unaryCall(ctx, rpcs.cancelJob, request, callOptions));
    },

    async getHistory(jobId, callOptions) {
      // Page after page: a long history comes in several replies, each under the 4 MiB a client accepts.
      const events: JobEvent[] = [];
      let pageToken = "";
      do {
        const page = await unaryCall(ctx, rpcs.getJobHistory, { jobId, pageSize: 0, pageToken }, callOptions);
        events.push(...page.events);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      return events;
    },

    worker: createWorkerClient(ctx),
    webhooks: createWebhookClient(ctx),

    close() {
      channel.close();
    },
  };
  return client;
}

function channelCredentials(tls: ClientOptions["tls"]): ChannelCredentials {
  if (tls === undefined || tls === false) return credentials.createInsecure();
  return sslCredentials(tls === true ? {} : tls);
}

/** A google.protobuf.Duration in milliseconds; undefined when unset. */
export function durationMs(duration: { seconds: number; nanos: number } | undefined): number | undefined {
  return duration === undefined ? undefined : durationToMs(duration);
}

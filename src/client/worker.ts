// The worker side of the library: JobWorkerService calls, and run(), which drives one job from create to finish.
import { randomUUID } from "node:crypto";
import type { Job } from "../gen/jobwatch/v1/job.js";
import { JobWorkerServiceService as rpcs } from "../gen/jobwatch/v1/job_worker_service.js";
import { type CallContext, type CallOptions, requireJob, unaryCall } from "./call.js";
import { FailedPreconditionError } from "./errors.js";

/** A JSON object: the result of a completed job. */
export type JsonObject = { [key: string]: unknown };

/** What a new job is. */
export interface NewJobInput {
  /** e.g. "add_golden_repo": letters, digits, '_', '-', '.'. */
  operationType: string;
  /** The user the job is for; only they (and manage_jobs) can see it. */
  username: string;
  /** What the job acts on, e.g. a repository alias; one active job per operation and resource. */
  resource?: string;
  /** Makes creation idempotent; the client picks a random one when unset, so its own retries are safe. */
  requestId?: string;
}

/** Where the work is: a phase such as "semantic" and a detail such as "150/500 files indexed". */
export interface ProgressDetail {
  phase?: string;
  detail?: string;
}

/** Thrown by WorkerContext.throwIfCancelRequested (and the reason of its signal) once a cancel was requested. */
export class CancelRequestedError extends Error {
  override name = "CancelRequestedError";
  constructor(
    readonly jobId: string,
    /** The reason the canceller gave, if any. */
    readonly reason: string | undefined,
  ) {
    super(`cancellation of job ${jobId} was requested${reason ? `: ${reason}` : ""}`);
  }
}

/** What the work function of run() gets: progress reporting and the cancel request. */
export interface WorkerContext {
  /** The job's id. */
  readonly jobId: string;
  /** The job as the server last returned it. */
  readonly job: Job;
  /** True once the server said someone asked to cancel the job (learnt from a progress or heartbeat reply). */
  readonly cancelRequested: boolean;
  /** Aborts, with a CancelRequestedError as its reason, when a cancel request is seen. */
  readonly signal: AbortSignal;
  /**
   * Reports progress (0-100) and optionally phase and detail. Throttled: at most one report per
   * interval reaches the server, later ones replace earlier ones, and the last one is always sent.
   */
  progress(percent: number, detail?: ProgressDetail): Promise<void>;
  /** Tells the server the worker is alive (run() also does this on its own during long silences). */
  heartbeat(): Promise<void>;
  /** Throws CancelRequestedError if a cancel was requested; call it at safe points to stop. */
  throwIfCancelRequested(): void;
}

/** Options of run(). */
export interface RunOptions {
  /** Called with the PENDING job before it is started, e.g. to print its id. */
  beforeStart?: (job: Job) => void | Promise<void>;
  /** Minimum time between two progress reports, in ms (default 250). */
  progressIntervalMs?: number;
  /** Send a heartbeat when nothing was reported for this long, in ms (default 30000; 0 turns it off). */
  heartbeatIntervalMs?: number;
}

/** The JobWorkerService calls (they need a token whose role grants report_jobs), and run(). */
export interface WorkerClient {
  /** Creates a PENDING job; retried safely through its request_id. */
  createJob(input: NewJobInput, options?: CallOptions): Promise<Job>;
  /** PENDING -> RUNNING. */
  startJob(jobId: string, options?: CallOptions): Promise<Job>;
  /** Sets progress (and phase, detail) of a RUNNING job; the reply carries cancelRequested. */
  reportProgress(jobId: string, percent: number, detail?: ProgressDetail, options?: CallOptions): Promise<Job>;
  /** Keeps a RUNNING job from being failed as stale; the reply carries cancelRequested. */
  heartbeat(jobId: string, options?: CallOptions): Promise<Job>;
  /** -> COMPLETED with an optional JSON result. */
  completeJob(jobId: string, result?: JsonObject, options?: CallOptions): Promise<Job>;
  /** -> FAILED with an error message for the user. */
  failJob(jobId: string, error: string, options?: CallOptions): Promise<Job>;
  /** Confirms a requested cancellation: -> CANCELLED. */
  markCancelled(jobId: string, options?: CallOptions): Promise<Job>;
  /**
   * Creates a job, starts it, runs `work` and finishes the job by what happened: `work` returns ->
   * COMPLETED with its result (even after a cancel request: the work did finish); `work` throws after a
   * cancel request -> CANCELLED; `work` throws otherwise -> FAILED with the error's message, and run()
   * rethrows that error. Resolves with the final job.
   */
  run(input: NewJobInput, work: (ctx: WorkerContext) => Promise<JsonObject | void>, options?: RunOptions): Promise<Job>;
}

/** Builds the worker half of a client on a generated JobWorkerService client. */
export function createWorkerClient(ctx: CallContext): WorkerClient {
  const worker: WorkerClient = {
    async createJob(input, options) {
      const request = {
        operationType: input.operationType,
        username: input.username,
        requestId: input.requestId ?? randomUUID(),
        resource: input.resource,
      };
      return requireJob(await unaryCall(ctx, rpcs.createJob, request, options));
    },
    async startJob(jobId, options) {
      return requireJob(await unaryCall(ctx, rpcs.startJob, { jobId }, options));
    },
    async reportProgress(jobId, percent, detail = {}, options) {
      const request = { jobId, progress: Math.round(percent), phase: detail.phase, detail: detail.detail };
      return requireJob(await unaryCall(ctx, rpcs.reportProgress, request, options));
    },
    async heartbeat(jobId, options) {
      return requireJob(await unaryCall(ctx, rpcs.heartbeat, { jobId }, options));
    },
    async completeJob(jobId, result, options) {
      const request = { jobId, result: result as { [key: string]: unknown } | undefined };
      return requireJob(await unaryCall(ctx, rpcs.completeJob, request, options));
    },
    async failJob(jobId, error, options) {
      return requireJob(await unaryCall(ctx, rpcs.failJob, { jobId, error }, options));
    },
    async markCancelled(jobId, options) {
      return requireJob(await unaryCall(ctx, rpcs.markCancelled, { jobId }, options));
    },
    run: (input, work, options) => runJob(worker, input, work, options),
  };
  return worker;
}

async function runJob(
  worker: WorkerClient,
  input: NewJobInput,
  work: (ctx: WorkerContext) => Promise<JsonObject | void>,
  options: RunOptions = {},
): Promise<Job> {
  const created = await worker.createJob(input);
  try {
    await options.beforeStart?.(created);
  } catch (err) {
    // Do not leave a PENDING job behind that no worker will ever start.
    await failQuietly(worker, created.jobId, err);
    throw err;
  }
  const ctx = new Context(worker, await worker.startJob(created.jobId), options);
  let result: JsonObject | void;
  try {
    result = await work(ctx);
  } catch (err) {
    await ctx.settle().catch(() => undefined);
    if (ctx.cancelRequested) return worker.markCancelled(ctx.jobId);
    await failQuietly(worker, ctx.jobId, err);
    throw err;
  }
  await ctx.settle();
  return worker.completeJob(ctx.jobId, result ?? undefined);
}

/** Fails the job with the error's message; a job already finished (failed as stale ...) is left as it is. */
async function failQuietly(worker: WorkerClient, jobId: string, err: unknown): Promise<void> {
  const message = err instanceof Error ? err.message : String(err);
  try {
    await worker.failJob(jobId, message || "the worker failed without a message");
  } catch (failErr) {
    // The work's error matters more than the news that the job had already ended.
    if (!(failErr instanceof FailedPreconditionError)) throw failErr;
  }
}

interface PendingReport {
  percent: number;
  detail: ProgressDetail;
}

/** The WorkerContext of run(): throttled progress, periodic heartbeats, cancel detection. */
class Context implements WorkerContext {
  private current: Job;
  private readonly controller = new AbortController();
  private readonly progressIntervalMs: number;
  private pending: PendingReport | undefined;
  private inFlight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private lastSentAt = 0;
  // An error of a report sent from a timer; thrown by the next progress() so it is not lost.
  private deferredError: unknown;

  constructor(
    private readonly worker: WorkerClient,
    job: Job,
    options: RunOptions,
  ) {
    this.current = job;
    this.progressIntervalMs = options.progressIntervalMs ?? 250;
    this.lastSentAt = Date.now();
    const heartbeatMs = options.heartbeatIntervalMs ?? 30_000;
    if (heartbeatMs > 0) {
      this.heartbeatTimer = setInterval(() => {
        if (this.inFlight === undefined && Date.now() - this.lastSentAt >= heartbeatMs) {
          this.heartbeat().catch((err: unknown) => (this.deferredError ??= err));
        }
      }, heartbeatMs);
      this.heartbeatTimer.unref();
    }
    this.observe(job);
  }

  get jobId(): string {
    return this.current.jobId;
  }

  get job(): Job {
    return this.current;
  }

  get cancelRequested(): boolean {
    return this.current.cancelRequested;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  throwIfCancelRequested(): void {
    if (this.cancelRequested) throw new CancelRequestedError(this.jobId, this.current.cancelReason);
  }

  async progress(percent: number, detail: ProgressDetail = {}): Promise<void> {
    this.throwDeferred();
    this.pending = { percent, detail };
    if (this.inFlight !== undefined || this.timer !== undefined) return;
    const wait = this.lastSentAt + this.progressIntervalMs - Date.now();
    if (wait > 0) {
      this.schedule(wait);
      return;
    }
    await this.sendPending();
  }

  async heartbeat(): Promise<void> {
    this.lastSentAt = Date.now();
    this.observe(await this.worker.heartbeat(this.jobId));
  }

  /** Stops the timers and sends the last pending report, so the job shows where the work ended. */
  async settle(): Promise<void> {
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight?.catch(() => undefined);
    if (this.pending !== undefined) await this.sendPending();
    this.throwDeferred();
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.sendPending().catch((err: unknown) => (this.deferredError ??= err));
    }, delayMs);
  }

  private sendPending(): Promise<void> {
    const report = this.pending;
    if (report === undefined) return Promise.resolve();
    this.pending = undefined;
    this.lastSentAt = Date.now();
    const sending = this.worker
      .reportProgress(this.jobId, report.percent, report.detail)
      .then((job) => this.observe(job))
      .finally(() => {
        this.inFlight = undefined;
        // Reports that came in while this one was on the wire go out at the next slot.
        if (this.pending !== undefined && this.timer === undefined) {
          this.schedule(Math.max(0, this.lastSentAt + this.progressIntervalMs - Date.now()));
        }
      });
    this.inFlight = sending;
    return sending;
  }

  private observe(job: Job): void {
    this.current = job;
    if (job.cancelRequested && !this.controller.signal.aborted) {
      this.controller.abort(new CancelRequestedError(job.jobId, job.cancelReason));
    }
  }

  private throwDeferred(): void {
    const err = this.deferredError;
    if (err === undefined) return;
    this.deferredError = undefined;
    throw err;
  }
}

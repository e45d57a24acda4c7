// The job as the store hands it out: plain values, times in epoch milliseconds, no SQL, no protobuf.

/** Where a job is in its lifecycle. */
export type JobStatus = "pending" | "running" | "completed" | "failed" | "cancelled";

/** Every status, in lifecycle order. */
export const JOB_STATUSES: readonly JobStatus[] = ["pending", "running", "completed", "failed", "cancelled"];

/** The statuses after which a job never changes again. */
export const TERMINAL_STATUSES: ReadonlySet<JobStatus> = new Set(["completed", "failed", "cancelled"]);

/** True when the job can no longer change. */
export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

/** A JSON object, the result of a completed job. */
export type JsonObject = { [key: string]: unknown };

/** A job and its current state. */
export interface Job {
  jobId: string;
  operationType: string;
  status: JobStatus;
  username: string;
  resource: string | null;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  completedAt: number | null;
  lastHeartbeatAt: number | null;
  progress: number;
  phase: string | null;
  detail: string | null;
  result: JsonObject | null;
  error: string | null;
  cancelRequested: boolean;
  cancelReason: string | null;
  /** 1 at creation, +1 on every change. */
  revision: number;
  /**
   * Where the progress rate of a RUNNING job is measured from (see lifecycle.ts rateAnchorAfter);
   * absent until the job has run a couple of minutes: the rate is then measured from startedAt and 0%.
   */
  rateAnchor?: RateAnchor;
  /**
   * The W3C traceparent of the traced CreateJob that made the job ("00-<32 hex>-<16 hex>-<2 hex>");
   * absent when that call was not traced.
   */
  traceContext?: string;
}

/** A point on a job's progress line: progress (0-100, fractional) at a time (epoch ms). */
export interface RateAnchor {
  at: number;
  progress: number;
}

/** A COMPLETED job's timing, as the history behind completion estimates reads it. */
export interface FinishedRun {
  resource: string | null;
  createdAt: number;
  startedAt: number;
  completedAt: number;
}

/** One recorded change of a job (its history). */
export interface JobEvent {
  revision: number;
  at: number;
  status: JobStatus;
  progress: number;
  phase: string | null;
  detail: string | null;
  cancelRequested: boolean;
  error: string | null;
}

/** True when going from `a` to `b` is no transition a watcher must see: same status, same cancel flag. */
export function sameState(a: Job, b: Job): boolean {
  return a.status === b.status && a.cancelRequested === b.cancelRequested;
}

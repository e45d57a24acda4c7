// Maps the store's jobs and events (epoch ms, lowercase statuses) to the generated protobuf types and back.

import type { Job, JobEvent } from "../gen/jobwatch/v1/job.js";
import { EstimateBasis, JobStatus } from "../gen/jobwatch/v1/job.js";
import type { Estimate, EstimateBasis as StoreEstimateBasis } from "../jobs/estimate.js";
import type { Job as StoreJob, JobEvent as StoreJobEvent, JobStatus as StoreJobStatus } from "../store/job.js";

const TO_PROTO: Record<StoreJobStatus, JobStatus> = {
  pending: JobStatus.JOB_STATUS_PENDING,
  running: JobStatus.JOB_STATUS_RUNNING,
  completed: JobStatus.JOB_STATUS_COMPLETED,
  failed: JobStatus.JOB_STATUS_FAILED,
  cancelled: JobStatus.JOB_STATUS_CANCELLED,
};

const FROM_PROTO = new Map<JobStatus, StoreJobStatus>(
  Object.entries(TO_PROTO).map(([store, proto]) => [proto, store as StoreJobStatus]),
);

/** The protobuf enum value of a store status. */
export function statusToProto(status: StoreJobStatus): JobStatus {
  return TO_PROTO[status];
}

/** The store status of a protobuf enum value; undefined for UNSPECIFIED and unknown numbers. */
export function statusFromProto(status: JobStatus): StoreJobStatus | undefined {
  return FROM_PROTO.get(status);
}

function date(ms: number | null): Date | undefined {
  return ms === null ? undefined : new Date(ms);
}

function optional(value: string | null): string | undefined {
  return value === null ? undefined : value;
}

/**
 * Phase and detail as the contract shows them (job.proto, Job.phase): a COMPLETED job has none, since they
 * said how far the work had got and it is done (100%); FAILED and CANCELLED keep the last ones reported,
 * where the work stopped. The row keeps them all (the history of earlier revisions shows them).
 */
export function whereItIs(
  status: StoreJobStatus,
  phase: string | null,
  detail: string | null,
): { phase: string | undefined; detail: string | undefined } {
  if (status === "completed") return { phase: undefined, detail: undefined };
  return { phase: optional(phase), detail: optional(detail) };
}

/** The protobuf enum value of each estimate basis. */
export const BASIS_TO_PROTO: Record<StoreEstimateBasis, EstimateBasis> = {
  progress_rate: EstimateBasis.ESTIMATE_BASIS_PROGRESS_RATE,
  history: EstimateBasis.ESTIMATE_BASIS_HISTORY,
  progress_and_history: EstimateBasis.ESTIMATE_BASIS_PROGRESS_AND_HISTORY,
};

/**
 * A store job as the wire's Job: Date timestamps, the enum status, unset fields undefined, and the
 * completion estimate if there is one. Handlers map jobs through JobView (job-view.ts), which supplies it.
 */
export function jobToProto(job: StoreJob, estimate?: Estimate): Job {
  return {
    jobId: job.jobId,
    operationType: job.operationType,
    status: statusToProto(job.status),
    createdAt: new Date(job.createdAt),
    startedAt: date(job.startedAt),
    completedAt: date(job.completedAt),
    progress: job.progress,
    result: job.result === null ? undefined : job.result,
    error: optional(job.error),
    username: job.username,
    revision: job.revision,
    updatedAt: new Date(job.updatedAt),
    cancelRequested: job.cancelRequested,
    cancelReason: optional(job.cancelReason),
    lastHeartbeatAt: date(job.lastHeartbeatAt),
    ...whereItIs(job.status, job.phase, job.detail),
    resource: optional(job.resource),
    estimatedCompletionAt: estimate === undefined ? undefined : new Date(estimate.at),
    estimateBasis: estimate === undefined ? EstimateBasis.ESTIMATE_BASIS_UNSPECIFIED : BASIS_TO_PROTO[estimate.basis],
    // The trace id is the second field of a traceparent: "00-<32 hex>-<16 hex>-<2 hex>".
    traceId: job.traceContext === undefined ? undefined : job.traceContext.slice(3, 35),
  };
}

/** A recorded store event as the wire's JobEvent. */
export function jobEventToProto(event: StoreJobEvent): JobEvent {
  return {
    revision: event.revision,
    time: new Date(event.at),
    status: statusToProto(event.status),
    progress: event.progress,
    ...whereItIs(event.status, event.phase, event.detail),
    cancelRequested: event.cancelRequested,
    error: optional(event.error),
  };
}

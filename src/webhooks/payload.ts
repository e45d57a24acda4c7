// The JSON body of a webhook delivery: the Standard Webhooks envelope {type, timestamp, data} around the
// job's fields at the revision of the transition, named as in the proto3 JSON mapping of Job.
import type { Job, JobStatus } from "../store/job.js";

const iso = (ms: number | null): string | undefined => (ms === null ? undefined : new Date(ms).toISOString());

/** The body of the delivery of `job` reaching `status` (the job as of that revision, when its history is still there). */
export function deliveryBody(
  delivery: { jobId: string; revision: number; status: JobStatus },
  job: Job | undefined,
  now: number,
): string {
  const data =
    job === undefined
      ? { jobId: delivery.jobId, revision: delivery.revision, status: delivery.status.toUpperCase() }
      : {
          jobId: job.jobId,
          revision: job.revision,
          status: job.status.toUpperCase(),
          operationType: job.operationType,
          username: job.username,
          resource: job.resource ?? undefined,
          progress: job.progress,
          phase: job.phase ?? undefined,
          detail: job.detail ?? undefined,
          result: job.result ?? undefined,
          error: job.error ?? undefined,
          cancelRequested: job.cancelRequested,
          cancelReason: job.cancelReason ?? undefined,
          createdAt: iso(job.createdAt),
          startedAt: iso(job.startedAt),
          completedAt: iso(job.completedAt),
          updatedAt: iso(job.updatedAt),
          traceId: job.traceContext?.slice(3, 35),
        };
  return JSON.stringify({ type: `job.${delivery.status}`, timestamp: new Date(now).toISOString(), data });
}

// JobWorkerService: how workers create jobs and move them through their lifecycle.
import type { Logger } from "pino";
import { InvalidArgumentError } from "../errors.js";
import type { Job as ProtoJob } from "../gen/jobwatch/v1/job.js";
import type { JobWorkerServiceServer } from "../gen/jobwatch/v1/job_worker_service.js";
import type { Job } from "../store/job.js";
import type { JobStore } from "../store/store.js";
import { unaryHandler } from "./call-adapters.js";
import type { JobView } from "./job-view.js";
import { encodedJobResponse } from "./shared-encoding.js";
import type { JobTracing } from "./tracing.js";
import { RequestValidator } from "./validate.js";

/** What JobWorkerService needs. */
export interface JobWorkerServiceDeps {
  /** A publishing store (src/watch/publishing-store.ts): each change reaches this process's watchers at once. */
  store: JobStore;
  /** How jobs are mapped to the wire, with their completion estimate. */
  view: JobView;
  log: Logger;
  /** Tracing on: CreateJob keeps its trace context with the job; every later rpc on the job links to it. */
  tracing?: JobTracing;
}

/**
 * JobWorkerService over a store. Every rpc carries report_jobs (checked by the interceptor) and acts on
 * any job: workers are services, not users. The store publishes each change to this process's watchers;
 * other replicas pick it up from the change feed.
 */
export function createJobWorkerService(deps: JobWorkerServiceDeps): JobWorkerServiceServer {
  const { store, view, log, tracing } = deps;

  /**
   * The changed job as a response: its wire bytes, written straight from the store's job (the service is
   * registered withEncodedJobs, whose serializers pass them through; every response here is `{job}`).
   */
  const changed = (job: Job): Promise<{ job: ProtoJob }> => {
    tracing?.linkToCreation(job);
    return encodedJobResponse(job, view);
  };

  return {
    createJob: unaryHandler(log, async (request) => {
      const v = new RequestValidator();
      const operationType = v.operationType(request.operationType);
      const username = v.username(request.username);
      const requestId = v.requestId(request.requestId);
      const resource = v.resource(request.resource);
      v.check();
      const traceContext = tracing?.creationContext();
      const job = await store.createJob({ operationType, username, requestId, resource, traceContext });
      // A retry returns the job its request_id made; the same id with other contents is a client bug
      // that would otherwise silently hand back someone else's job. The message does not name that job:
      // its id is not the caller's to learn (it may be another user's).
      if (
        job.operationType !== operationType ||
        job.username !== username ||
        (job.resource ?? undefined) !== resource
      ) {
        throw InvalidArgumentError.field(
          "request_id",
          `request_id ${requestId} was already used to create another job with other fields; use a new UUID for a new job`,
        );
      }
      return await changed(job);
    }),

    startJob: unaryHandler(log, async (request) => {
      const v = new RequestValidator();
      const jobId = v.jobId(request.jobId);
      v.check();
      return await changed(await store.startJob(jobId));
    }),

    reportProgress: unaryHandler(log, async (request) => {
      const v = new RequestValidator();
      const jobId = v.jobId(request.jobId);
      const progress = v.progress(request.progress);
      const phase = v.phase(request.phase);
      const detail = v.detail(request.detail);
      v.check();
      return await changed(await store.reportProgress(jobId, progress, phase, detail));
    }),

    heartbeat: unaryHandler(log, async (request) => {
      const v = new RequestValidator();
      const jobId = v.jobId(request.jobId);
      v.check();
      return await changed(await store.heartbeat(jobId));
    }),

    completeJob: unaryHandler(log, async (request) => {
      const v = new RequestValidator();
      const jobId = v.jobId(request.jobId);
      const result = v.result(request.result);
      v.check();
      const job = await store.completeJob(jobId, result);
      view.completed(job);
      return await changed(job);
    }),

    failJob: unaryHandler(log, async (request) => {
      const v = new RequestValidator();
      const jobId = v.jobId(request.jobId);
      const error = v.errorText(request.error);
      v.check();
      return await changed(await store.failJob(jobId, error));
    }),

    markCancelled: unaryHandler(log, async (request) => {
      const v = new RequestValidator();
      const jobId = v.jobId(request.jobId);
      v.check();
      return await changed(await store.markCancelled(jobId));
    }),
  };
}

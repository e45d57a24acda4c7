// One job revision, many readers: its response is made once and encoded once for every WatchJob stream
// that carries it and every GetJobDetails call that read it in the same turn.
import type { GetJobDetailsResponse, JobServiceService, WatchJobResponse } from "../gen/jobwatch/v1/job_service.js";
import type { Job as ProtoJob } from "../gen/jobwatch/v1/job.js";
import type { Job } from "../store/job.js";
import type { JobView } from "./job-view.js";

/**
 * The WatchJobResponse of each store job object, made once. The hub hands the same object to every
 * watcher of a job, so a change is mapped once, not once per watcher (its estimate is the one made when
 * the first watcher got it). Weak: an entry lives as long as some watcher still holds the job.
 */
const watchResponses = new WeakMap<Job, Promise<WatchJobResponse>>();

/**
 * The GetJobDetailsResponse of each store job object, made once. The store hands every read of a job in
 * one turn of the event loop the same object (read-batch.ts), so clients polling the same job share its
 * mapping (and, through withSharedEncoding, its bytes); the next turn reads the job again.
 */
const detailsResponses = new WeakMap<Job, Promise<GetJobDetailsResponse>>();

/** The response in `cache` for `job`, made (mapped by `view`) the first time it is asked for. */
function shared<R extends { job?: ProtoJob | undefined }>(
  cache: WeakMap<Job, Promise<R>>,
  job: Job,
  view: JobView,
): Promise<R> {
  let response = cache.get(job);
  if (response === undefined) {
    response = view.toProto(job).then((mapped) => ({ job: mapped }) as R);
    cache.set(job, response);
  }
  return response;
}

/** The (shared, never modified) WatchJob response that carries `job`, mapped by `view`. */
export function watchResponse(job: Job, view: JobView): Promise<WatchJobResponse> {
  return shared(watchResponses, job, view);
}

/** The (shared, never modified) GetJobDetails response for `job`, mapped by `view`. */
export function detailsResponse(job: Job, view: JobView): Promise<GetJobDetailsResponse> {
  return shared(detailsResponses, job, view);
}

/** `encode`, memoized per message object (weakly): a shared response is encoded once. */
function memoized<T extends object>(encode: (value: T) => Buffer): (value: T) => Buffer {
  const encoded = new WeakMap<T, Buffer>();
  return (value) => {
    let bytes = encoded.get(value);
    if (bytes === undefined) {
      bytes = encode(value);
      encoded.set(value, bytes);
    }
    // grpc-js copies these bytes into each call's own frame and never writes to them.
    return bytes;
  };
}

/**
 * JobService's definition with the response encoders of WatchJob and GetJobDetails memoized per
 * response object: the handlers hand the same response object to every reader of a job revision
 * (watchResponse, detailsResponse), so it is encoded once, not once per reader. The generated
 * definition is copied, not modified.
 */
export function withSharedEncoding(service: JobServiceService): JobServiceService {
  return {
    ...service,
    watchJob: { ...service.watchJob, responseSerialize: memoized(service.watchJob.responseSerialize) },
    getJobDetails: { ...service.getJobDetails, responseSerialize: memoized(service.getJobDetails.responseSerialize) },
  };
}

// One change, many watchers: each job revision becomes one WatchJobResponse, encoded once for every stream.
import type { JobServiceService, WatchJobResponse } from "../gen/jobwatch/v1/job_service.js";
import type { Job } from "../store/job.js";
import type { JobView } from "./job-view.js";

/**
 * The WatchJobResponse of each store job object, made once. The hub hands the same object to every
 * watcher of a job, so a change is mapped once, not once per watcher (its estimate is the one made when
 * the first watcher got it). Weak: an entry lives as long as some watcher still holds the job.
 */
const watchResponses = new WeakMap<Job, Promise<WatchJobResponse>>();

/** The (shared, never modified) response that carries `job`, mapped by `view`. */
export function watchResponse(job: Job, view: JobView): Promise<WatchJobResponse> {
  let response = watchResponses.get(job);
  if (response === undefined) {
    response = view.toProto(job).then((mapped) => ({ job: mapped }));
    watchResponses.set(job, response);
  }
  return response;
}

/**
 * JobService's definition with WatchJob's response encoder memoized per response object. The handler
 * hands the same response object to every watcher of a change (watchResponse), so with many watchers
 * a change is encoded once, not once per watcher. The generated definition is copied, not modified.
 */
export function withSharedWatchEncoding(service: JobServiceService): JobServiceService {
  const encode = service.watchJob.responseSerialize;
  const encoded = new WeakMap<WatchJobResponse, Buffer>();
  const responseSerialize = (value: WatchJobResponse): Buffer => {
    let bytes = encoded.get(value);
    if (bytes === undefined) {
      bytes = encode(value);
      encoded.set(value, bytes);
    }
    // grpc-js copies these bytes into each call's own frame and never writes to them.
    return bytes;
  };
  return { ...service, watchJob: { ...service.watchJob, responseSerialize } };
}

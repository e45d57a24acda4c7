// One job revision, many readers: its response is made once and encoded once for every WatchJob stream
// that carries it and every GetJobDetails call that read it while it was unchanged (and its estimate too).

import type { Job as ProtoJob } from "../gen/jobwatch/v1/job.js";
import type { JobServiceService, WatchJobsEventType } from "../gen/jobwatch/v1/job_service.js";
import { GetJobDetailsResponse, WatchJobResponse, WatchJobsResponse } from "../gen/jobwatch/v1/job_service.js";
import type { Estimate } from "../jobs/estimate.js";
import type { Job } from "../store/job.js";
import { isTerminal } from "../store/job.js";
import { encodeJobResponse } from "./job-encoding.js";
import { jobToProto } from "./job-mapper.js";
import type { JobView } from "./job-view.js";

/**
 * The WatchJobResponse of each store job object, made once. The hub hands the same object to every
 * watcher of a job, so a change is mapped once, not once per watcher (its estimate is the one made when
 * the first watcher got it). Weak: an entry lives as long as some watcher still holds the job.
 */
const watchResponses = new WeakMap<Job, Promise<WatchJobResponse>>();

/** The encoded GetJobDetailsResponse of one store job object, and the estimate it carries. */
interface Details {
  /** When (the view's clock) the estimate was last made. */
  at: number;
  estimate: Estimate | undefined;
  bytes: Buffer;
}

/**
 * The encoded GetJobDetailsResponse of each store job object. The store hands every read of a job the
 * same object while the job is unchanged (read-batch.ts), across turns of the event loop on SQLite, so
 * clients polling a job share its bytes until it changes or its estimate does.
 */
const detailsResponses = new WeakMap<Job, Details>();
/** The estimate being made for a job object at a time, so the calls of one moment share it. */
const estimating = new WeakMap<Job, { at: number; bytes: Promise<Buffer> }>();

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
function watchResponse(job: Job, view: JobView): Promise<WatchJobResponse> {
  return shared(watchResponses, job, view);
}

/**
 * The GetJobDetails response for `job` with `view`'s estimate, as its wire bytes (shared, never
 * modified), written straight from the store's job (job-encoding.ts) without the generated message
 * object. It stands in for the response object: the handler returns it, and withSharedEncoding's
 * serializer passes bytes through. The estimate is made again when the view's clock moved since it was
 * last made (a finished job has none), and the bytes are made again only when it came out different.
 */
export function detailsResponse(job: Job, view: JobView): GetJobDetailsResponse | Promise<GetJobDetailsResponse> {
  const now = view.now();
  const known = detailsResponses.get(job);
  if (known !== undefined && (known.at === now || isTerminal(job.status))) {
    return known.bytes as unknown as GetJobDetailsResponse;
  }
  let making = estimating.get(job);
  if (making === undefined || making.at !== now) {
    const bytes = view.estimate(job).then((estimate) => {
      const current = detailsResponses.get(job);
      if (current !== undefined && sameEstimate(current.estimate, estimate)) {
        current.at = Math.max(current.at, now);
        return current.bytes;
      }
      const made = encodeDetails(job, estimate);
      detailsResponses.set(job, { at: now, estimate, bytes: made });
      return made;
    });
    making = { at: now, bytes };
    estimating.set(job, making);
  }
  return making.bytes as Promise<unknown> as Promise<GetJobDetailsResponse>;
}

/** The GetJobDetailsResponse bytes of `job` with `estimate`. */
function encodeDetails(job: Job, estimate: Estimate | undefined): Buffer {
  return encodeJobResponse(job, estimate, () =>
    GetJobDetailsResponse.encode({ job: jobToProto(job, estimate) }).finish(),
  );
}

function sameEstimate(a: Estimate | undefined, b: Estimate | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.at === b.at && a.basis === b.basis);
}

/**
 * The wire bytes of a response whose only field is the job (every JobWorkerService response), with
 * `view`'s estimate, written straight from the store's job like detailsResponse but not kept: a write's
 * job is new each time. The handler returns the Buffer; withEncodedJobs' serializers pass it through.
 */
export function encodedJobResponse<R>(job: Job, view: JobView): Promise<R> {
  const bytes = view.estimate(job).then((estimate) => encodeDetails(job, estimate));
  return bytes as Promise<unknown> as Promise<R>;
}

/**
 * A service definition whose response serializers all pass pre-serialized Buffers through
 * (encodedJobResponse): JobWorkerService, whose every response is `{job}`. The definition is copied.
 */
export function withEncodedJobs<S extends Record<string, { responseSerialize: (value: never) => Buffer }>>(
  service: S,
): S {
  const copy: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(service)) {
    copy[name] = { ...method, responseSerialize: passingBuffers(method.responseSerialize as (v: unknown) => Buffer) };
  }
  return copy as S;
}

/** The serialized WatchJobResponse of each store job object, once prepareWatchMessage made it. */
const watchMessages = new WeakMap<Job, Buffer>();
/** The wire Job each serialized WatchJob message carries, for those who observe what is sent (metrics). */
const messageJobs = new WeakMap<Buffer, ProtoJob>();
/** prepareWatchMessage's work in flight, so concurrent askers share it. */
const preparing = new WeakMap<Job, Promise<void>>();

/**
 * Makes the serialized WatchJob message of `job` (mapped by `view`, encoded once), which watchMessage
 * then returns synchronously; undefined when it is made already. The hub prepares each change once
 * before writing it to the job's watchers, so the same bytes go to every stream, as Kubernetes' watch
 * cache serializes an event once for all its watchers.
 */
export function prepareWatchMessage(job: Job, view: JobView): Promise<void> | undefined {
  if (watchMessages.has(job)) return undefined;
  let work = preparing.get(job);
  if (work === undefined) {
    work = watchResponse(job, view).then((response) => {
      const bytes = WatchJobResponse.encode(response).finish();
      // A view of the encoder's bytes, not a copy: grpc-js only reads them (it copies them into each frame).
      const message = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      watchMessages.set(job, message);
      if (response.job) messageJobs.set(message, response.job);
      preparing.delete(job);
    });
    preparing.set(job, work);
  }
  return work;
}

/** The serialized WatchJob message of `job`, if prepareWatchMessage made it. */
export function watchMessage(job: Job): Buffer | undefined {
  return watchMessages.get(job);
}

/**
 * The `jobs` field of each store job object as WatchJobs carries one changed job (field 2: its tag, length
 * and the Job's bytes), encoded once for every WatchJobs stream the change reaches.
 */
const watchJobsFields = new WeakMap<Job, Promise<Buffer>>();

/**
 * The serialized WatchJobsResponse of one changed job: `type` and this stream's `cursor` encoded per
 * stream (a few bytes), followed by the job's field, mapped by `view` and encoded once per job object
 * for all streams. Protobuf readers take fields in any order, and a field that is not the default is
 * encoded the same wherever it stands, so the bytes decode to {type, jobs: [job], cursor}.
 */
export function watchJobsChange(job: Job, view: JobView, type: WatchJobsEventType, cursor: string): Promise<Buffer> {
  let field = watchJobsFields.get(job);
  if (field === undefined) {
    field = watchResponse(job, view).then((response) => {
      // type 0 and cursor "" are defaults, which the encoder leaves out: only field 2 is written.
      const bytes = WatchJobsResponse.encode({
        type: 0,
        jobs: response.job ? [response.job] : [],
        cursor: "",
      }).finish();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    });
    watchJobsFields.set(job, field);
  }
  return field.then((shared) => {
    const head = WatchJobsResponse.encode({ type, jobs: [], cursor }).finish();
    return Buffer.concat([head, shared], head.byteLength + shared.byteLength);
  });
}

/** The wire Job a message sent by WatchJob carries: from the response, or from a message prepareWatchMessage serialized. */
export function sentJob(message: unknown): ProtoJob | undefined {
  if (Buffer.isBuffer(message)) return messageJobs.get(message);
  return (message as { job?: ProtoJob } | undefined)?.job;
}

/**
 * A response serializer with a seam for pre-serialized messages: a Buffer is passed through as the
 * message's bytes (grpc-js then only frames it, as a bare grpc-js server does with its own bytes);
 * anything else (a bookmark) is encoded. grpc-js serializes per call in sendMessage and has no other
 * way in for bytes made once for many calls.
 */
function passingBuffers<T>(serialize: (value: T) => Buffer): (value: T | Buffer) => Buffer {
  return (value) => (Buffer.isBuffer(value) ? value : serialize(value));
}

/**
 * JobService's definition with the serializers of WatchJob, WatchJobs and GetJobDetails passing
 * pre-serialized Buffers through (prepareWatchMessage, watchJobsChange, detailsResponse): each job
 * revision is encoded once, not once per reader. The generated definition is copied, not modified.
 */
export function withSharedEncoding(service: JobServiceService): JobServiceService {
  return {
    ...service,
    watchJob: { ...service.watchJob, responseSerialize: passingBuffers(service.watchJob.responseSerialize) },
    watchJobs: { ...service.watchJobs, responseSerialize: passingBuffers(service.watchJobs.responseSerialize) },
    getJobDetails: {
      ...service.getJobDetails,
      responseSerialize: passingBuffers(service.getJobDetails.responseSerialize),
    },
  };
}

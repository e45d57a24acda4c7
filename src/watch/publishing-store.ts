// "Publish after a write" in one place: a store whose every job write hands the written jobs to the hub.
import type { Job } from "../store/job.js";
import type { JobStore } from "../store/store.js";
import type { JobPublisher } from "./job-feed.js";

/**
 * The store methods that change jobs: each returns the job (or jobs) it wrote, which this process's
 * watchers must see at once. Other replicas' watchers read the same change from the change feed.
 */
export const JOB_WRITES = [
  "createJob",
  "startJob",
  "reportProgress",
  "heartbeat",
  "completeJob",
  "failJob",
  "markCancelled",
  "cancelJob",
  "failStaleJobs",
  "cancelUnconfirmed",
] as const satisfies readonly (keyof JobStore)[];

/** The store methods that return jobs without changing them: nothing to publish. */
export const JOB_READS = [
  "getJob",
  "listJobs",
  "snapshotsAt",
  "snapshotsBetween",
  "transitionsBetween",
] as const satisfies readonly (keyof JobStore)[];

/** The JobStore methods whose promise carries a Job or Job[]. */
type JobReturning = {
  [K in keyof JobStore]: JobStore[K] extends (...args: never[]) => Promise<infer R>
    ? [Extract<R, Job | readonly Job[]>] extends [never]
      ? never
      : K
    : never;
}[keyof JobStore];

/**
 * Fails to compile when a store method that returns jobs is in neither list: a new write cannot be
 * added without deciding whether its jobs are published.
 */
type Unclassified = Exclude<JobReturning, (typeof JOB_WRITES)[number] | (typeof JOB_READS)[number]>;
const everyJobMethodClassified: [Unclassified] extends [never] ? true : Unclassified = true;
void everyJobMethodClassified;

const WRITES: ReadonlySet<PropertyKey> = new Set(JOB_WRITES);

/**
 * `store` with every write in JOB_WRITES publishing what it returns, once it has committed; every other
 * method is the store's own. Handlers and the sweeper write through this, so no write path can forget
 * to tell the watchers. A write that throws publishes nothing.
 */
export function publishingStore<S extends Partial<JobStore>>(store: S, hub: JobPublisher): S {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, name) {
      const value: unknown = Reflect.get(target, name, target);
      if (typeof value !== "function") return value;
      let method = wrapped.get(name);
      if (method === undefined) {
        method = WRITES.has(name) ? publishing(value.bind(target), hub) : value.bind(target);
        wrapped.set(name, method);
      }
      return method;
    },
  });
}

/** A write that publishes each job it returns. */
function publishing(write: (...args: unknown[]) => Promise<Job | Job[]>, hub: JobPublisher) {
  return async (...args: unknown[]): Promise<Job | Job[]> => {
    const written = await write(...args);
    if (Array.isArray(written)) for (const job of written) hub.publish(job);
    else hub.publish(written);
    return written;
  };
}

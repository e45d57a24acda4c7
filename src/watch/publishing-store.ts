// "Publish after a write" in one place: a store whose every job write hands the written jobs to the hub.
import type { Job } from "../store/job.js";
import type { StoreMethod, StoreOf } from "../store/operations.js";
import { decorate } from "../store/operations.js";
import type { JobStore } from "../store/store.js";
import type { JobPublisher } from "./job-feed.js";

/**
 * `store` with every operation that publishes (`publishes: true` in OPERATIONS, store/operations.ts)
 * handing the job or jobs it returns to the hub once it has committed; every other operation is the
 * store's own. Handlers and the sweeper write through this, so no write path can forget to tell this
 * process's watchers (other replicas' read the same change from the change feed). A write that throws
 * publishes nothing.
 */
export function publishingStore<S extends Partial<JobStore>>(store: S, hub: JobPublisher): StoreOf<S> {
  return decorate(store, (_name, facts, method) => (facts.publishes ? publishing(method, hub) : method));
}

/** A write that publishes each job it returns (the table allows `publishes` only where that is Job or Job[]). */
function publishing(write: StoreMethod, hub: JobPublisher): StoreMethod {
  const run = write as (...args: unknown[]) => Promise<Job | Job[]>;
  return async (...args: never[]) => {
    const written = await run(...args);
    if (Array.isArray(written)) for (const job of written) hub.publish(job);
    else hub.publish(written);
    return written;
  };
}

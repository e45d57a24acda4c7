// The WatchJobs rpc: validate the filter, scope it to what the caller may see, stream the hub's events as protobuf.
import type { Principal } from "../auth/principal.js";
import { jobsScope } from "../auth/visibility.js";
import { WatchJobsEventType, type WatchJobsRequest, type WatchJobsResponse } from "../gen/jobwatch/v1/job_service.js";
import type { JobsFilter } from "../watch/jobs-filter.js";
import type { JobsEvent, JobsWatchOptions } from "../watch/jobs-watch.js";
import type { StreamContext } from "./call-adapters.js";
import type { JobView } from "./job-view.js";
import { statusFilter } from "./list-filters.js";
import { watchJobsChange } from "./shared-encoding.js";
import { RequestValidator } from "./validate.js";

/** What the WatchJobs handler needs of the hub. */
export interface JobsWatchSource {
  watchJobs(opts: JobsWatchOptions): AsyncGenerator<JobsEvent>;
}

/**
 * The filter of a WatchJobs request, every invalid field named at once, and scoped by the one rule of
 * ListJobs and GetJobStatistics (jobsScope): the caller's own jobs by default; another user's, or every
 * user's (all_users), only with manage_jobs.
 */
function watchJobsFilter(request: WatchJobsRequest, principal: Principal): JobsFilter {
  const v = new RequestValidator();
  const statuses = statusFilter(v, request.statuses) ?? [];
  const operationType = request.operationType === "" ? undefined : v.operationType(request.operationType);
  const resource = request.resource === "" ? undefined : v.resource(request.resource);
  const createdAfter = v.timestamp("created_after", request.createdAfter);
  if (request.username !== "") v.username(request.username);
  v.check();
  return {
    statuses: new Set(statuses),
    operationType,
    resource,
    createdAfter,
    username: jobsScope(principal, request, "watching"),
  };
}

/** The protobuf type of each event. */
const EVENT_TYPES: Record<JobsEvent["type"], WatchJobsEventType> = {
  snapshot: WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_SNAPSHOT,
  synced: WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_SYNCED,
  changed: WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_CHANGED,
  removed: WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_REMOVED,
  bookmark: WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_BOOKMARK,
};

/** The WatchJobs handler body: an async generator for serverStreamingHandler; jobs mapped by `view`. */
export function watchJobs(hub: JobsWatchSource, view: JobView) {
  return async function* (request: WatchJobsRequest, context: StreamContext): AsyncGenerator<WatchJobsResponse> {
    const filter = watchJobsFilter(request, context.principal);
    // Headers once the request is accepted: a resumed stream may wait long for its first change.
    context.sendHeader();
    const events = hub.watchJobs({
      filter,
      afterCursor: request.afterCursor === "" ? undefined : request.afterCursor,
      signal: context.signal,
    });
    for await (const event of events) {
      const type = EVENT_TYPES[event.type];
      if ("job" in event) {
        // A change reaches every stream as the same job object: mapped and encoded once for all of them,
        // as WatchJob's is; only the type and this stream's cursor are encoded per stream. The Buffer
        // stands in for the response: the method's serializer passes it through (shared-encoding.ts).
        yield (await watchJobsChange(event.job, view, type, event.cursor)) as unknown as WatchJobsResponse;
        continue;
      }
      const jobs = event.type === "snapshot" ? await view.toProtos(event.jobs) : [];
      yield { type, jobs, cursor: event.cursor };
    }
  };
}

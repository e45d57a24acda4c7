// ListJobs' filters, validated: statuses, operation type and the creation-time range.

import { JobStatus as ProtoJobStatus } from "../gen/jobwatch/v1/job.js";
import type { ListJobsRequest } from "../gen/jobwatch/v1/job_service.js";
import type { JobStatus } from "../store/job.js";
import { JOB_STATUSES } from "../store/job.js";
import { statusFromProto, statusToProto } from "./job-mapper.js";
import type { ListFilters } from "./page-token.js";
import { RequestValidator } from "./validate.js";

/** The statuses a ListJobs filter may name, as a user reads them in a message. */
const FILTER_STATUS_NAMES = JOB_STATUSES.map((s) => ProtoJobStatus[statusToProto(s)]).join(", ");

/**
 * ListJobs' statuses as store statuses; undefined (every status) when empty. UNSPECIFIED or an unknown
 * number is refused rather than ignored: dropping it would silently widen (or narrow) the filter.
 */
export function statusFilter(v: RequestValidator, values: readonly ProtoJobStatus[]): JobStatus[] | undefined {
  if (values.length === 0) return undefined;
  // There are five statuses: a longer list is a client bug, and refusing it bounds the work and the error.
  if (values.length > JOB_STATUSES.length) {
    v.add(
      "statuses",
      `may name at most ${JOB_STATUSES.length} statuses (each of ${FILTER_STATUS_NAMES} once); got ${values.length} values`,
    );
    return undefined;
  }
  const mapped = new Set<JobStatus>();
  const bad: string[] = [];
  for (const value of values) {
    const status = statusFromProto(value);
    if (status !== undefined) mapped.add(status);
    else
      bad.push(value === ProtoJobStatus.JOB_STATUS_UNSPECIFIED ? "JOB_STATUS_UNSPECIFIED" : `unknown number ${value}`);
  }
  if (bad.length > 0) {
    v.add(
      "statuses",
      `may contain only ${FILTER_STATUS_NAMES}; leave it empty for every status; got ${bad.join(", ")}`,
    );
  }
  return [...mapped];
}

/**
 * ListJobs' page size and filters, every invalid field named in one INVALID_ARGUMENT. The username
 * scope is the caller's business (it depends on their permissions), so it is left out here.
 */
export function listFilters(request: ListJobsRequest): {
  filters: Omit<ListFilters, "username">;
  pageSize: number;
} {
  const v = new RequestValidator();
  const pageSize = v.pageSize(request.pageSize);
  const statuses = statusFilter(v, request.statuses);
  const operationType = request.operationType === "" ? undefined : v.operationType(request.operationType);
  const createdAfter = v.timestamp("created_after", request.createdAfter);
  const createdBefore = v.timestamp("created_before", request.createdBefore);
  if (createdAfter !== undefined && createdBefore !== undefined && createdAfter >= createdBefore) {
    v.add("created_after", "must be before created_before (created_after is inclusive, created_before exclusive)");
  }
  v.check();
  return { filters: { statuses, operationType, createdAfter, createdBefore }, pageSize };
}

// Who sees which jobs: their own, or every job with manage_jobs; the rule every read and the watch fan-out apply.
import { InvalidArgumentError, jobNotFound, type NotFoundError, PermissionDeniedError } from "../errors.js";
import type { Job } from "../store/job.js";
import type { Principal } from "./principal.js";
import { canManageJobs } from "./principal.js";

/** True when the principal may see the job: their own, or any with manage_jobs. */
export function canSee(principal: Principal, job: Job): boolean {
  return job.username === principal.username || canManageJobs(principal);
}

/** The user whose jobs alone the principal may see; undefined with manage_jobs (every job). */
export function visibleTo(principal: Principal): string | undefined {
  return canManageJobs(principal) ? undefined : principal.username;
}

/**
 * The one NOT_FOUND of a job the principal asked for, saying which jobs the caller sees (so a client can
 * tell an admin "it may have expired" without "it may be another user's"). Missing, another user's and
 * removed jobs still answer alike for one caller.
 */
export function jobNotFoundFor(principal: Principal, jobId: string): NotFoundError {
  return jobNotFound(jobId, canManageJobs(principal) ? "all_jobs" : "own_jobs");
}

/** The scope fields of ListJobs, GetJobStatistics and WatchJobs requests. */
export interface ScopeRequest {
  /** One user's jobs; empty: the caller's own (or every user's with allUsers). */
  username: string;
  /** Every user's jobs. */
  allUsers: boolean;
}

/**
 * The one scope rule of the rpcs that read many jobs (ListJobs, GetJobStatistics, WatchJobs), for every
 * caller alike: an empty username is the caller's own jobs, a username that user's, all_users every
 * user's (undefined). Another user's, or every user's, needs manage_jobs (PERMISSION_DENIED naming it);
 * all_users with a username is INVALID_ARGUMENT. `action` names the refused action, e.g. "listing".
 */
export function jobsScope(principal: Principal, request: ScopeRequest, action: string): string | undefined {
  if (request.allUsers && request.username !== "") {
    throw InvalidArgumentError.field(
      "all_users",
      `cannot be combined with username (got '${request.username}'): pass one user's name, or all_users for every user's jobs`,
    );
  }
  if (canManageJobs(principal)) return request.allUsers ? undefined : request.username || principal.username;
  if (request.allUsers) {
    throw new PermissionDeniedError(
      `permission denied: ${action} every user's jobs (all_users) needs permission 'manage_jobs', which role ` +
        `'${principal.role}' does not have; without all_users you get your own jobs`,
      "manage_jobs",
    );
  }
  if (request.username !== "" && request.username !== principal.username) {
    throw new PermissionDeniedError(
      `permission denied: ${action} another user's jobs needs permission 'manage_jobs', which role ` +
        `'${principal.role}' does not have; leave username empty for your own jobs`,
      "manage_jobs",
    );
  }
  return principal.username;
}

// Who sees which jobs: their own, or every job with manage_jobs; the rule every read and the watch fan-out apply.
import { PermissionDeniedError } from "../errors.js";
import type { Job } from "../store/job.js";
import { canManageJobs } from "./principal.js";
import type { Principal } from "./principal.js";

/** True when the principal may see the job: their own, or any with manage_jobs. */
export function canSee(principal: Principal, job: Job): boolean {
  return job.username === principal.username || canManageJobs(principal);
}

/** The user whose jobs alone the principal may see; undefined with manage_jobs (every job). */
export function visibleTo(principal: Principal): string | undefined {
  return canManageJobs(principal) ? undefined : principal.username;
}

/**
 * The username a ListJobs or GetJobStatistics query is scoped to: with manage_jobs the requested one
 * (empty: every user), without it always the caller's own, and naming someone else is PERMISSION_DENIED.
 * `what` names the refused action in the message, e.g. "listing another user's jobs".
 */
export function scopedUsername(principal: Principal, requested: string, what: string): string | undefined {
  if (canManageJobs(principal)) return requested === "" ? undefined : requested;
  if (requested !== "" && requested !== principal.username) {
    throw new PermissionDeniedError(
      `permission denied: ${what} needs permission 'manage_jobs'; leave username empty for your own jobs`,
      "manage_jobs",
    );
  }
  return principal.username;
}

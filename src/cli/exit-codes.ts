// The exit codes of the client commands, so a script can tell outcomes apart with `$?`.
import { JobStatus } from "../client/index.js";

/**
 * Exit codes of `jobwatch get|watch|list|stats|cancel|job|demo`.
 *
 *   0    success; for `watch`, the job COMPLETED
 *   1    anything else: bad usage, an invalid argument, a transition the job's status does not allow
 *   2    `watch`: the job FAILED
 *   3    `watch`: the job was CANCELLED; `job progress|heartbeat`: a cancel was requested (the report
 *        was recorded; stop the work and run `jobwatch job cancelled ID`)
 *   4    the job was not found (unknown, another user's, or expired), or the token was rejected or lacks
 *        the permission
 *   5    the server could not be reached (or stopped answering), or `--timeout` passed first
 *   130  interrupted with Ctrl-C
 */
export const ExitCode = {
  OK: 0,
  ERROR: 1,
  FAILED: 2,
  CANCELLED: 3,
  NOT_FOUND_OR_DENIED: 4,
  UNREACHABLE_OR_TIMEOUT: 5,
  INTERRUPTED: 130,
} as const;

/** One of the documented exit codes. */
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The exit code of `watch` for a job that ended with `status`. */
export function exitCodeForStatus(status: JobStatus): ExitCode {
  switch (status) {
    case JobStatus.JOB_STATUS_COMPLETED:
      return ExitCode.OK;
    case JobStatus.JOB_STATUS_FAILED:
      return ExitCode.FAILED;
    case JobStatus.JOB_STATUS_CANCELLED:
      return ExitCode.CANCELLED;
    default:
      return ExitCode.ERROR;
  }
}

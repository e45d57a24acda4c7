// Job status helpers for client code: names as people read them, and which statuses are final.
import { JobStatus } from "../gen/jobwatch/v1/job.js";

const TERMINAL: ReadonlySet<JobStatus> = new Set([
  JobStatus.JOB_STATUS_COMPLETED,
  JobStatus.JOB_STATUS_FAILED,
  JobStatus.JOB_STATUS_CANCELLED,
]);

/** True for COMPLETED, FAILED and CANCELLED: the job will never change again. */
export function isTerminalStatus(status: JobStatus): boolean {
  return TERMINAL.has(status);
}

/** The short upper-case name of a status, e.g. "RUNNING". */
export function statusName(status: JobStatus): string {
  const name = JobStatus[status];
  return name === undefined ? `STATUS_${status}` : name.replace(/^JOB_STATUS_/, "");
}

/** Parses "running", "RUNNING" or "JOB_STATUS_RUNNING" into a status; undefined when unknown. */
export function parseStatus(text: string): JobStatus | undefined {
  const key = text
    .trim()
    .toUpperCase()
    .replace(/^JOB_STATUS_/, "");
  const value = (JobStatus as unknown as Record<string, JobStatus | undefined>)[`JOB_STATUS_${key}`];
  return value === undefined || value === JobStatus.JOB_STATUS_UNSPECIFIED ? undefined : value;
}

// How the page writes statuses, times, durations and estimates.

import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { EstimateBasis, type Job, JobStatus } from "./gen/jobwatch/v1/job_pb.js";

/** "running", "completed" ... (the seed's lowercase names). */
export function statusName(status: JobStatus): string {
  return (JobStatus[status] ?? "unspecified").replace(/^JOB_STATUS_/, "").toLowerCase();
}

/** The statuses a filter offers, in lifecycle order. */
export const STATUSES: readonly JobStatus[] = [
  JobStatus.PENDING,
  JobStatus.RUNNING,
  JobStatus.COMPLETED,
  JobStatus.FAILED,
  JobStatus.CANCELLED,
];

/** True for PENDING and RUNNING. */
export function isActive(job: Job): boolean {
  return job.status === JobStatus.PENDING || job.status === JobStatus.RUNNING;
}

/** A timestamp as a Date, or undefined when unset. */
export function dateOf(ts: Timestamp | undefined): Date | undefined {
  return ts === undefined ? undefined : timestampDate(ts);
}

/** "4s", "3m 12s", "2h 5m", "3d 4h". */
export function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** A job's duration: "340 ms" below a second, "4.2s" below a minute, else as span(). */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${Math.round(ms / 100) / 10}s`;
  return span(ms);
}

/** A protobuf Duration in ms. */
export function durationMs(d: Duration | undefined): number | undefined {
  return d === undefined ? undefined : Number(d.seconds) * 1000 + d.nanos / 1e6;
}

/** "14:03:27" today, "2026-11-30 14:03:27" otherwise. */
export function clock(date: Date | undefined): string {
  if (date === undefined) return "—";
  const iso = new Date(date.getTime() - date.getTimezoneOffset() * 60_000).toISOString();
  const day = iso.slice(0, 10);
  const time = iso.slice(11, 19);
  const today = new Date(Date.now() - new Date().getTimezoneOffset() * 60_000).toISOString().slice(0, 10);
  return day === today ? time : `${day} ${time}`;
}

const BASIS: Record<EstimateBasis, string> = {
  [EstimateBasis.UNSPECIFIED]: "",
  [EstimateBasis.PROGRESS_RATE]: "from its progress",
  [EstimateBasis.HISTORY]: "from history",
  [EstimateBasis.PROGRESS_AND_HISTORY]: "from progress and history",
};

/** "in 14s" with the server's estimate, "—" when it has none. */
export function eta(job: Job, now: number): string {
  const at = dateOf(job.estimatedCompletionAt);
  if (at === undefined || !isActive(job)) return "—";
  return `in ${span(at.getTime() - now)}`;
}

/** "ETA 14:03:27 (in 14s, from history)", for the job page. */
export function etaLong(job: Job, now: number): string {
  const at = dateOf(job.estimatedCompletionAt);
  if (at === undefined || !isActive(job)) return "no estimate";
  return `ETA ${clock(at)} (in ${span(at.getTime() - now)}, ${BASIS[job.estimateBasis]})`;
}

/** "semantic: 200/500 files indexed", "semantic", or "". */
export function phaseDetail(job: { phase?: string; detail?: string }): string {
  return [job.phase, job.detail].filter((part) => part !== undefined && part !== "").join(": ");
}

// The job lifecycle as pure rules: which status allows which change, what the change sets, what enters the history.

import type { MissingStep } from "../errors.js";
import { FailedPreconditionError } from "../errors.js";
import type { JobRow, JobRowUpdate } from "./database.js";
import type { Job, JobStatus, RateAnchor } from "./job.js";
import { isTerminal } from "./job.js";

/** What a transition does to a job: the columns it sets and whether the change enters the history. */
export interface Change {
  set: JobRowUpdate;
  recorded: boolean;
}

/**
 * A lifecycle rule: given the job as read (and its row, for bookkeeping columns the domain Job does not
 * carry) at time `now`, the change to apply, null for nothing to do, or a thrown FailedPreconditionError.
 */
export type Rule = (job: Job, row: JobRow, now: number) => Change | null;

/** Progress-only changes enter the history at most once per this many ms per job. */
export const HISTORY_PROGRESS_INTERVAL_MS = 1000;

/**
 * The estimate measures a job's progress rate over the last RATE_WINDOW_MS to 2 x RATE_WINDOW_MS: long
 * enough to average a worker that reports in bursts a minute apart, short enough to follow a job that
 * changes pace within minutes. (A job that stops reporting slows down at once: the rate is measured up
 * to the time of reading.)
 */
export const RATE_WINDOW_MS = 120_000;

/**
 * The rate anchor after progress `progress` reported at `now`; undefined when it stays where it is.
 * The anchor (absent: startedAt and 0%) moves once it is more than 2 x RATE_WINDOW_MS old, to the point
 * RATE_WINDOW_MS back on the straight line from it to (now, progress). The rate read from it is the same
 * just before and after the move (no jump), and exact for a job at a steady rate; what happened before
 * the anchor counts less and less (half per RATE_WINDOW_MS). It needs no history query, only these two
 * columns written in the progress UPDATE itself.
 */
export function rateAnchorAfter(
  anchor: RateAnchor | undefined,
  startedAt: number | null,
  progress: number,
  now: number,
): RateAnchor | undefined {
  const from = anchor ?? (startedAt === null ? undefined : { at: startedAt, progress: 0 });
  if (from === undefined || now - from.at <= 2 * RATE_WINDOW_MS) return undefined;
  const at = now - RATE_WINDOW_MS;
  return { at, progress: from.progress + ((progress - from.progress) * (at - from.at)) / (now - from.at) };
}

/** PENDING -> RUNNING. */
export function startRule(): Rule {
  return (job, _row, now) => {
    if (job.status !== "pending") {
      refuse(
        job,
        "start a job in %s status",
        job.status === "running" ? "it was already started" : "only a PENDING job can be started",
      );
    }
    return { set: { status: "running", started_at: now, last_heartbeat_at: now }, recorded: true };
  };
}

/** Progress, phase and detail of a RUNNING job (undefined phase or detail: unchanged). */
export function progressRule(progress: number, phase?: string, detail?: string): Rule {
  return (job, row, now) => {
    if (job.status !== "running") refuse(job, "report progress on a job in %s status", "start");
    const set: JobRowUpdate = { progress, last_heartbeat_at: now };
    if (phase !== undefined) set.phase = phase;
    if (detail !== undefined) set.detail = detail;
    const phaseChanged = phase !== undefined && phase !== job.phase;
    const changed = progress !== job.progress || phaseChanged || (detail !== undefined && detail !== job.detail);
    // A new phase is a step a person reads in the history, like a status change: always recorded.
    // Progress (and detail) within a phase enters it at most once a second, so a chatty worker
    // cannot grow it without bound.
    const lastRecorded = row.history_at === null ? null : Number(row.history_at);
    const recorded =
      phaseChanged || (changed && (lastRecorded === null || now - lastRecorded >= HISTORY_PROGRESS_INTERVAL_MS));
    if (recorded) set.history_at = now;
    const anchor = rateAnchorAfter(job.rateAnchor, job.startedAt, progress, now);
    if (anchor !== undefined) {
      set.rate_anchor_at = anchor.at;
      set.rate_anchor_progress = anchor.progress;
    }
    return { set, recorded };
  };
}

/** A heartbeat of a RUNNING job. */
export function heartbeatRule(): Rule {
  return (job, _row, now) => {
    if (job.status !== "running") refuse(job, "record a heartbeat for a job in %s status", "start");
    // A revision of its own (last_heartbeat_at changed) but not history: nothing a person reads changed.
    return { set: { last_heartbeat_at: now }, recorded: false };
  };
}

/** PENDING or RUNNING -> COMPLETED with `resultText` (JSON text or null). */
export function completeRule(resultText: string | null): Rule {
  return (job, _row, now) => {
    if (job.status !== "pending" && job.status !== "running") refuse(job, "complete a job in %s status");
    return {
      set: { status: "completed", progress: 100, result: resultText, completed_at: now, active_key: null },
      recorded: true,
    };
  };
}

/** PENDING or RUNNING -> FAILED with `error`. */
export function failRule(error: string): Rule {
  return (job, _row, now) => {
    if (job.status !== "pending" && job.status !== "running") refuse(job, "fail a job in %s status");
    return { set: { status: "failed", error, completed_at: now, active_key: null }, recorded: true };
  };
}

/** A RUNNING job whose cancellation was requested -> CANCELLED (the worker confirms). */
export function markCancelledRule(): Rule {
  return (job, _row, now) => {
    // A PENDING job never has a request: CancelJob cancels it at once.
    if (job.status === "pending") {
      refuse(job, "mark a job in %s status as cancelled", "request_cancellation");
    }
    if (job.status !== "running") refuse(job, "mark a job in %s status as cancelled");
    if (!job.cancelRequested) {
      refuse(job, "mark a job in %s status as cancelled", "request_cancellation");
    }
    return { set: { status: "cancelled", completed_at: now, active_key: null }, recorded: true };
  };
}

/** PENDING -> CANCELLED; RUNNING -> cancellation requested; CANCELLED (or already requested) -> unchanged. */
export function cancelRule(reason?: string): Rule {
  const cancelReason = reason === undefined || reason === "" ? null : reason;
  return (job, _row, now) => {
    switch (job.status) {
      case "pending":
        // Nobody works on it yet: cancelled at once.
        return {
          set: {
            status: "cancelled",
            completed_at: now,
            active_key: null,
            cancel_requested: 1,
            cancel_reason: cancelReason,
            cancel_requested_at: now,
          },
          recorded: true,
        };
      case "running":
        // The worker has to stop: it learns of the request from the job and confirms with MarkCancelled.
        if (job.cancelRequested) return null;
        return {
          set: { cancel_requested: 1, cancel_reason: cancelReason, cancel_requested_at: now },
          recorded: true,
        };
      case "cancelled":
        return null;
      default:
        throw new FailedPreconditionError(
          `cannot cancel a job in ${job.status.toUpperCase()} status`,
          "STATUS",
          job.jobId,
        );
    }
  };
}

/** The stale sweep: a RUNNING job with no heartbeat since before `staleBefore` -> FAILED; anything else unchanged. */
export function failStaleRule(staleBefore: number): Rule {
  return (job, _row, now) => {
    // Re-checked on the fresh row: another replica may have moved it, or the worker spoke up.
    if (job.status !== "running" || job.lastHeartbeatAt === null || job.lastHeartbeatAt >= staleBefore) return null;
    const error = `worker stopped reporting: no heartbeat since ${new Date(job.lastHeartbeatAt).toISOString()}`;
    return { set: { status: "failed", error, completed_at: now, active_key: null }, recorded: true };
  };
}

/**
 * The cancel grace sweep: a RUNNING job whose cancellation was requested before `requestedBefore` and
 * never confirmed -> CANCELLED; anything else unchanged.
 */
export function cancelUnconfirmedRule(requestedBefore: number): Rule {
  return (job, row, now) => {
    const requestedAt = row.cancel_requested_at === null ? null : Number(row.cancel_requested_at);
    if (job.status !== "running" || !job.cancelRequested || requestedAt === null || requestedAt >= requestedBefore)
      return null;
    const error = "cancelled: the worker never confirmed the cancellation within the grace period";
    return { set: { status: "cancelled", error, completed_at: now, active_key: null }, recorded: true };
  };
}

/**
 * Throws the FailedPreconditionError of an illegal transition: `what` has a %s where the current
 * status goes (in upper case); `advice` says what to do, or which step another call takes is missing,
 * unless the job has finished anyway. The words say what state forbids what, never which rpc to call:
 * the service layer adds that from the error's `refusal`.
 */
function refuse(job: Job, what: string, advice?: string | MissingStep): never {
  const status = job.status.toUpperCase();
  const refused = `cannot ${what.replace("%s", status)}`;
  if (isTerminal(job.status) || advice === undefined) {
    throw new FailedPreconditionError(`${refused}; the job has already finished`, "STATUS", job.jobId);
  }
  if (advice !== "start" && advice !== "request_cancellation") {
    throw new FailedPreconditionError(`${refused}; ${advice}`, "STATUS", job.jobId);
  }
  throw new FailedPreconditionError(`${refused}; ${missingStep(advice, job.status)}`, "STATUS", job.jobId, {
    refused,
    status,
    missing: advice,
  });
}

/** The store's words for a missing step. */
function missingStep(step: MissingStep, status: JobStatus): string {
  if (step === "start") return "the job must be started first";
  // A PENDING job never has a request: cancelling it cancels it at once.
  const which = status === "pending" ? "a RUNNING job" : "a job";
  return `no cancellation was requested: only ${which} whose cancellation was requested can be marked cancelled`;
}

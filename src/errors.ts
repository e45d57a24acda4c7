// Domain errors: what the store, auth and handlers throw. The server maps each to one gRPC status.

/** One invalid request field and what a valid value looks like. */
export interface FieldViolation {
  field: string;
  description: string;
}

/** Base of every error whose message is meant for the caller. */
export abstract class JobwatchError extends Error {
  override name = "JobwatchError";
}

/** Thrown when a request field is malformed or out of range; never retryable as is. */
export class InvalidArgumentError extends JobwatchError {
  override name = "InvalidArgumentError";
  /** `message` defaults to the violations joined; give one when no single field is to blame (no violations). */
  constructor(
    readonly violations: FieldViolation[],
    message?: string,
  ) {
    super(message ?? violations.map((v) => `${v.field}: ${v.description}`).join("; "));
  }

  /** One violation, the common case. */
  static field(field: string, description: string): InvalidArgumentError {
    return new InvalidArgumentError([{ field, description }]);
  }
}

/** Which jobs the caller of a NOT_FOUND sees: its own user's, or every user's (manage_jobs). */
export type CallerSees = "own_jobs" | "all_jobs";

/** Thrown when a job (or token) does not exist or is not visible to the caller. */
export class NotFoundError extends JobwatchError {
  override name = "NotFoundError";
  constructor(
    message: string,
    /** Facts a client can act on, sent as google.rpc.ErrorInfo (reason JOB_NOT_FOUND) when set. */
    readonly metadata?: { job_id: string; caller_sees?: CallerSees },
  ) {
    super(message);
  }
}

/**
 * The NotFoundError of a job that is missing, not visible to the caller, or removed by retention: one
 * message for all three, written only here, so a caller cannot tell another user's job from no job.
 * `callerSees`, when the caller is known, tells the client which of those explanations can apply.
 */
export function jobNotFound(jobId: string, callerSees?: CallerSees): NotFoundError {
  return new NotFoundError(`job ${jobId} not found (finished jobs are removed after the retention period)`, {
    job_id: jobId,
    ...(callerSees === undefined ? {} : { caller_sees: callerSees }),
  });
}

/**
 * A step another call takes that would have made a refused transition legal: "start" (the job is still
 * PENDING), "request_cancellation" (no cancellation was requested). The store names the step, never
 * the rpc; the service layer may add which rpc takes it.
 */
export type MissingStep = "start" | "request_cancellation";

/** What a refusal that another call could have prevented says besides its message. */
export interface Refusal {
  /** The refusal without advice, e.g. "cannot report progress on a job in PENDING status". */
  refused: string;
  /** The job's status at the refusal, in upper case. */
  status: string;
  /** The step that was missing. */
  missing: MissingStep;
}

/** Thrown when a job's current status does not allow the requested transition. */
export class FailedPreconditionError extends JobwatchError {
  override name = "FailedPreconditionError";
  constructor(
    message: string,
    /** The kind of precondition, e.g. "STATUS". */
    readonly type: string,
    /** What the precondition applies to, e.g. a job id. */
    readonly subject: string,
    /** Set when a step another call takes was missing (the message then says so in the store's words). */
    readonly refusal?: Refusal,
  ) {
    super(message);
  }
}

/** Thrown when creating something that conflicts with what exists (an active job for the same resource). */
export class AlreadyExistsError extends JobwatchError {
  override name = "AlreadyExistsError";
  constructor(
    message: string,
    /** Machine-readable reason, UPPER_SNAKE_CASE, sent as google.rpc.ErrorInfo. */
    readonly reason: string,
    /** Facts a client can act on, e.g. { job_id }. */
    readonly metadata: Record<string, string>,
  ) {
    super(message);
  }
}

/** Thrown when the caller presents no valid credentials (missing, malformed, unknown or revoked token). */
export class UnauthenticatedError extends JobwatchError {
  override name = "UnauthenticatedError";
  constructor(
    message: string,
    /** Machine-readable reason, UPPER_SNAKE_CASE, sent as google.rpc.ErrorInfo (e.g. TOKEN_EXPIRED). */
    readonly reason = "INVALID_TOKEN",
  ) {
    super(message);
  }
}

/** Thrown when the caller is known but their role lacks the permission the operation needs. */
export class PermissionDeniedError extends JobwatchError {
  override name = "PermissionDeniedError";
  constructor(
    message: string,
    readonly permission: string,
  ) {
    super(message);
  }
}

/** Thrown when the service cannot serve right now (database unreachable, shutting down); retryable. */
export class UnavailableError extends JobwatchError {
  override name = "UnavailableError";
}

/**
 * Thrown when a write lost a race with other writers every time it tried (an optimistic-concurrency
 * check that kept failing, a deadlock or lock timeout that kept recurring). Nothing was written, so
 * the same call may be retried as it is, after a pause; google.rpc.Code ABORTED means exactly this.
 */
export class AbortedError extends JobwatchError {
  override name = "AbortedError";
}

/** Thrown when a position the caller resumes from is no longer held (a WatchJobs cursor too old); start again. */
export class OutOfRangeError extends JobwatchError {
  override name = "OutOfRangeError";
}

/**
 * Thrown when a limit on what one caller or the server holds is reached (open watches, a reader that fell
 * too far behind); `subject` and `limit` name the quota for google.rpc.QuotaFailure.
 */
export class ResourceExhaustedError extends JobwatchError {
  override name = "ResourceExhaustedError";
  constructor(
    message: string,
    readonly subject: string,
  ) {
    super(message);
  }
}

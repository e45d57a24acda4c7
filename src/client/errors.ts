// Typed errors of the client library: one class per gRPC status a caller acts on, decoded from the call.
import { type Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { BadRequest, ErrorInfo, PreconditionFailure } from "../gen/google/rpc/error_details.js";
import { Status } from "../gen/google/rpc/status.js";

/** One invalid request field, from the google.rpc.BadRequest the server attached. */
export interface FieldViolation {
  field: string;
  description: string;
}

/** One failed precondition, from the google.rpc.PreconditionFailure the server attached. */
export interface PreconditionViolation {
  type: string;
  subject: string;
  description: string;
}

/** The machine-readable reason of an error, from the google.rpc.ErrorInfo the server attached. */
export interface ErrorReason {
  reason: string;
  domain: string;
  metadata: Record<string, string>;
}

/** The typed details a server may send in the grpc-status-details-bin trailer. */
export interface ErrorDetails {
  fieldViolations: FieldViolation[];
  preconditionViolations: PreconditionViolation[];
  errorInfo: ErrorReason | undefined;
}

/** Base of every error the client throws for a failed call; `code` is the gRPC status code. */
export class JobwatchClientError extends Error {
  override name = "JobwatchClientError";
  constructor(
    message: string,
    /** The gRPC status code (a value of `status` from @grpc/grpc-js). */
    readonly code: status,
    /** Typed details decoded from the status trailer; empty when the server sent none. */
    readonly details: ErrorDetails = emptyDetails(),
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** The machine-readable reason of the google.rpc.ErrorInfo the server attached, e.g. "MISSING_PERMISSION". */
  get reason(): string | undefined {
    return this.details.errorInfo?.reason;
  }

  /** The name of the gRPC code, e.g. "NOT_FOUND". */
  get codeName(): string {
    return status[this.code] ?? String(this.code);
  }
}

/** Thrown when a request field is malformed (a job id that is not a UUID, progress over 100 ...). */
export class InvalidArgumentError extends JobwatchClientError {
  override name = "InvalidArgumentError";
  /** Which fields were rejected and why. */
  get fieldViolations(): FieldViolation[] {
    return this.details.fieldViolations;
  }
}

/** Thrown when the job does not exist, is not visible to the caller, or was removed after retention. */
export class JobNotFoundError extends JobwatchClientError {
  override name = "JobNotFoundError";
  /**
   * Which jobs the caller sees, as the server said: "own_jobs" (the job may be another user's) or
   * "all_jobs" (manage_jobs: it is missing or expired); undefined from a server that does not say.
   */
  get callerSees(): "own_jobs" | "all_jobs" | undefined {
    const value = this.details.errorInfo?.metadata["caller_sees"];
    return value === "own_jobs" || value === "all_jobs" ? value : undefined;
  }
}

/** Thrown when a job for the same operation and resource is already PENDING or RUNNING. */
export class AlreadyExistsError extends JobwatchClientError {
  override name = "AlreadyExistsError";
  /** The id of the active job that conflicts, when the server named it. */
  get activeJobId(): string | undefined {
    return this.details.errorInfo?.metadata["job_id"];
  }
}

/** Thrown when the job's status does not allow the call (progress on a PENDING job, a second complete ...). */
export class FailedPreconditionError extends JobwatchClientError {
  override name = "FailedPreconditionError";
  /** The failed preconditions, e.g. type "STATUS" for the job's current status. */
  get violations(): PreconditionViolation[] {
    return this.details.preconditionViolations;
  }
}

/** Thrown when the token is known but its role lacks the permission the call needs. */
export class PermissionDeniedError extends JobwatchClientError {
  override name = "PermissionDeniedError";
  /** The permission the call needed (e.g. "manage_jobs", "report_jobs"), when the server named it. */
  get permission(): string | undefined {
    return this.details.errorInfo?.metadata["permission"];
  }
}

/** Thrown when the token is missing, malformed, unknown or revoked. */
export class UnauthenticatedError extends JobwatchClientError {
  override name = "UnauthenticatedError";
}

/**
 * Thrown when the server cannot be reached or is shutting down. Retryable: reads and watches are
 * retried by the client before this reaches the caller.
 */
export class UnavailableError extends JobwatchClientError {
  override name = "UnavailableError";
}

/** Thrown when a call's deadline passed, or waitForJob's timeout, before an answer came. */
export class DeadlineExceededError extends JobwatchClientError {
  override name = "DeadlineExceededError";
}

const BY_CODE: Partial<Record<status, typeof JobwatchClientError>> = {
  [status.INVALID_ARGUMENT]: InvalidArgumentError,
  [status.NOT_FOUND]: JobNotFoundError,
  [status.ALREADY_EXISTS]: AlreadyExistsError,
  [status.FAILED_PRECONDITION]: FailedPreconditionError,
  [status.PERMISSION_DENIED]: PermissionDeniedError,
  [status.UNAUTHENTICATED]: UnauthenticatedError,
  [status.UNAVAILABLE]: UnavailableError,
  [status.DEADLINE_EXCEEDED]: DeadlineExceededError,
};

/** True when `err` is an error as grpc-js reports a failed call. */
function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === "number" && "metadata" in err;
}

/** Turns a grpc-js call error into the matching typed error; anything else is returned as it is. */
export function toClientError(err: unknown): unknown {
  if (err instanceof JobwatchClientError || !isServiceError(err)) return err;
  const Class = BY_CODE[err.code as status] ?? JobwatchClientError;
  // `details` is the server's own message; `message` would prefix it with "5 NOT_FOUND: ".
  const message = err.details || err.message;
  return new Class(message, err.code as status, decodeDetails(err.metadata), { cause: err });
}

/** Decodes the google.rpc.Status in the grpc-status-details-bin trailer into typed details. */
function decodeDetails(metadata: Metadata | undefined): ErrorDetails {
  const out = emptyDetails();
  const raw = metadata?.get("grpc-status-details-bin")[0];
  if (!(raw instanceof Uint8Array)) return out;
  let decoded: Status;
  try {
    decoded = Status.decode(raw);
  } catch {
    // A malformed trailer must not hide the status code and message the caller still has.
    return out;
  }
  for (const any of decoded.details) {
    const type = any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1);
    try {
      if (type === "google.rpc.BadRequest") {
        for (const v of BadRequest.decode(any.value).fieldViolations) {
          out.fieldViolations.push({ field: v.field, description: v.description });
        }
      } else if (type === "google.rpc.PreconditionFailure") {
        for (const v of PreconditionFailure.decode(any.value).violations) {
          out.preconditionViolations.push({ type: v.type, subject: v.subject, description: v.description });
        }
      } else if (type === "google.rpc.ErrorInfo") {
        const info = ErrorInfo.decode(any.value);
        out.errorInfo = { reason: info.reason, domain: info.domain, metadata: { ...info.metadata } };
      }
    } catch {
      // Skip a detail we cannot decode; the others still help.
    }
  }
  return out;
}

/** The socket-level reason in a grpc-js "no connection" message, e.g. "connect ECONNREFUSED 127.0.0.1:50051". */
export function connectionCause(message: string): string | undefined {
  const last = /Last error: (?:Error: )?(.*?)(?:\. Resolution note:.*)?$/s.exec(message);
  if (last?.[1]) return last[1];
  if (/No connection established|Connection dropped|Name resolution failed|ECONNREFUSED|ECONNRESET/.test(message)) {
    return message;
  }
  return undefined;
}

/**
 * Why the server refused a token, said once: "token rejected: unknown or revoked" becomes "unknown, revoked
 * or mistyped"; a JWT's own reason ("JWT expired at ...: get a new token") stays as it is.
 */
export function rejectionReason(message: string): string {
  const why = message.replace(/^token rejected:\s*/i, "");
  return why === "unknown or revoked" ? "it is unknown, revoked or mistyped" : why;
}

function emptyDetails(): ErrorDetails {
  return { fieldViolations: [], preconditionViolations: [], errorInfo: undefined };
}

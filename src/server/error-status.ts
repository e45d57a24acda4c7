// Maps any thrown error to one gRPC status (with google.rpc error details): the one error mapping of the server.

import type { StatusObject } from "@grpc/grpc-js";
import { status as GrpcStatus, Metadata } from "@grpc/grpc-js";
import type { Logger } from "pino";
import {
  AbortedError,
  AlreadyExistsError,
  FailedPreconditionError,
  type FieldViolation,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
} from "../errors.js";
import type { Any } from "../gen/google/protobuf/any.js";
import { BadRequest, ErrorInfo, PreconditionFailure, QuotaFailure } from "../gen/google/rpc/error_details.js";
import { Status } from "../gen/google/rpc/status.js";
import { preconditionMessage } from "./rpc-advice.js";

/** The trailer in which gRPC carries a serialized google.rpc.Status with typed details. */
export const STATUS_DETAILS_TRAILER = "grpc-status-details-bin";

/** The domain of every google.rpc.ErrorInfo that jobwatch sends. */
export const ERROR_DOMAIN = "jobwatch.v1";

/** What a client sees for an unexpected error: the stack stays in the server log, never on the wire. */
export const INTERNAL_MESSAGE = "internal error (see server log)";

const TYPE_PREFIX = "type.googleapis.com/";

/** A google.rpc detail message packed into google.protobuf.Any. */
function pack<T>(typeName: string, fns: { encode(message: T): { finish(): Uint8Array } }, message: T): Any {
  return { typeUrl: TYPE_PREFIX + typeName, value: Buffer.from(fns.encode(message).finish()) };
}

/**
 * Bounds of what an error may carry. The message travels twice (grpc-message and inside
 * grpc-status-details-bin, base64) in the trailers, which must fit HTTP/2's header list limit (grpc-js
 * and most clients: 8-16 KiB): past it nothing is sent and every call on the connection hangs.
 */
export const ERROR_LIMITS = {
  /** Characters of a status message. */
  messageChars: 512,
  /** google.rpc.BadRequest field violations sent; the rest are counted in the last one. */
  violations: 5,
  /** Characters of one violation's description. */
  descriptionChars: 200,
  /** Characters of a field name, an ErrorInfo metadata value, a precondition subject. */
  fieldChars: 100,
} as const;

/** `text` cut to at most `max` characters (code points), ending in "..." when cut. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  const points = [...text];
  return points.length <= max ? text : `${points.slice(0, max - 3).join("")}...`;
}

/**
 * The violations as sent: the first few, each shortened, and (when some were left out) a last one
 * saying how many, so a request with thousands of bad values still gets a reply that fits.
 */
export function boundedViolations(violations: readonly FieldViolation[]): FieldViolation[] {
  const shown = violations.slice(0, ERROR_LIMITS.violations).map((v) => ({
    field: truncate(v.field, ERROR_LIMITS.fieldChars),
    description: truncate(v.description, ERROR_LIMITS.descriptionChars),
  }));
  const rest = violations.length - shown.length;
  if (rest > 0) {
    const fields = [...new Set(violations.slice(shown.length).map((v) => v.field))];
    shown.push({
      field: truncate(fields.slice(0, 3).join(", "), ERROR_LIMITS.fieldChars),
      description: `and ${rest} more violation${rest === 1 ? "" : "s"} not listed; fix these first`,
    });
  }
  return shown;
}

/** A status whose trailer carries google.rpc.Status{code, message, details}, as rich-error clients expect. */
function richStatus(code: GrpcStatus, message: string, anyDetails: Any[]): StatusObject {
  const metadata = new Metadata();
  const details = truncate(message, ERROR_LIMITS.messageChars);
  const body = Status.encode({ code, message: details, details: anyDetails }).finish();
  metadata.set(STATUS_DETAILS_TRAILER, Buffer.from(body));
  return { code, details, metadata };
}

/** True for the error an aborted AbortSignal produces (DOMException or a plain Error named so). */
function isAbortError(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { name?: unknown }).name === "AbortError";
}

/**
 * The one place where errors become gRPC statuses (after nice-grpc's createErrorStatusObject): domain
 * errors keep their code and gain a typed detail a program can act on; an abort is CANCELLED; anything
 * else is INTERNAL with a fixed message, and its stack is logged here, never sent.
 */
export function errorToStatus(error: unknown, log: Logger, context: Record<string, unknown> = {}): StatusObject {
  if (error instanceof InvalidArgumentError) {
    const violations = boundedViolations(error.violations);
    // No violations: no single field is to blame (e.g. an undecodable body), and the message says why.
    const message =
      violations.length === 0 ? error.message : violations.map((v) => `${v.field}: ${v.description}`).join("; ");
    return richStatus(GrpcStatus.INVALID_ARGUMENT, message, [
      pack("google.rpc.BadRequest", BadRequest, { fieldViolations: violations }),
    ]);
  }
  if (error instanceof NotFoundError) {
    // Which job, and which jobs the caller sees: a client's advice then fits an admin and a user alike.
    const details =
      error.metadata === undefined
        ? []
        : [
            pack("google.rpc.ErrorInfo", ErrorInfo, {
              reason: "JOB_NOT_FOUND",
              domain: ERROR_DOMAIN,
              metadata: error.metadata,
            }),
          ];
    return richStatus(GrpcStatus.NOT_FOUND, error.message, details);
  }
  if (error instanceof FailedPreconditionError) {
    const message = preconditionMessage(error);
    return richStatus(GrpcStatus.FAILED_PRECONDITION, message, [
      pack("google.rpc.PreconditionFailure", PreconditionFailure, {
        violations: [
          {
            type: truncate(error.type, ERROR_LIMITS.fieldChars),
            subject: truncate(error.subject, ERROR_LIMITS.fieldChars),
            description: truncate(message, ERROR_LIMITS.descriptionChars),
          },
        ],
      }),
    ]);
  }
  if (error instanceof AlreadyExistsError) {
    return richStatus(GrpcStatus.ALREADY_EXISTS, error.message, [
      pack("google.rpc.ErrorInfo", ErrorInfo, {
        reason: error.reason,
        domain: ERROR_DOMAIN,
        metadata: Object.fromEntries(
          Object.entries(error.metadata)
            .slice(0, ERROR_LIMITS.violations)
            .map(([k, v]) => [truncate(k, ERROR_LIMITS.fieldChars), truncate(v, ERROR_LIMITS.fieldChars)]),
        ),
      }),
    ]);
  }
  if (error instanceof UnauthenticatedError) {
    return richStatus(GrpcStatus.UNAUTHENTICATED, error.message, [
      pack("google.rpc.ErrorInfo", ErrorInfo, { reason: error.reason, domain: ERROR_DOMAIN, metadata: {} }),
    ]);
  }
  if (error instanceof PermissionDeniedError) {
    return richStatus(GrpcStatus.PERMISSION_DENIED, error.message, [
      pack("google.rpc.ErrorInfo", ErrorInfo, {
        reason: "MISSING_PERMISSION",
        domain: ERROR_DOMAIN,
        metadata: { permission: error.permission },
      }),
    ]);
  }
  if (error instanceof AbortedError) {
    // A lost race and nothing written: retryable as is, after a pause (google.rpc.Code ABORTED).
    return richStatus(GrpcStatus.ABORTED, error.message, []);
  }
  if (error instanceof UnavailableError) {
    // Retryable by definition: the client should back off and try again (a watcher resumes with after_revision).
    return richStatus(GrpcStatus.UNAVAILABLE, error.message, []);
  }
  if (error instanceof OutOfRangeError) {
    // Not retryable as is: the caller must start over (WatchJobs without a cursor).
    return richStatus(GrpcStatus.OUT_OF_RANGE, error.message, []);
  }
  if (error instanceof ResourceExhaustedError) {
    return richStatus(GrpcStatus.RESOURCE_EXHAUSTED, error.message, [
      pack("google.rpc.QuotaFailure", QuotaFailure, {
        violations: [
          {
            subject: truncate(error.subject, ERROR_LIMITS.fieldChars),
            description: truncate(error.message, ERROR_LIMITS.descriptionChars),
          },
        ],
      }),
    ]);
  }
  if (isAbortError(error)) {
    return { code: GrpcStatus.CANCELLED, details: "the call was cancelled", metadata: new Metadata() };
  }
  log.error({ err: error, ...context }, "unexpected error in a handler");
  return { code: GrpcStatus.INTERNAL, details: INTERNAL_MESSAGE, metadata: new Metadata() };
}

/** Logs a failed call at a level that matches whose fault it was (the client's errors are not server errors). */
export function logFailure(log: Logger, path: string, status: StatusObject): void {
  if (status.code === GrpcStatus.INTERNAL) return; // already logged with its stack by errorToStatus
  log.debug({ path, code: GrpcStatus[status.code], details: status.details }, "call failed");
}

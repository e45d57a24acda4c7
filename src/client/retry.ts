// The client's one retry rule: whether a failed call is sent again, by its status code and its rpc's idempotency.
import { status } from "@grpc/grpc-js";
import type { Idempotency } from "./contract.js";

/** What the rule needs to know about a failed attempt. */
export interface FailedAttempt {
  /** The gRPC status code it failed with. */
  code: status;
  /** grpc-js's text for it; read only where grpc-js says what happened nowhere else (see below). */
  message: string;
  /** The client cancelled this attempt itself (its signal aborted, or it let go of a stream). */
  cancelledByUs?: boolean;
}

/** True when sending the call twice does what sending it once does (the contract says so). */
function repeatable(idempotency: Idempotency): boolean {
  return idempotency === "NO_SIDE_EFFECTS" || idempotency === "IDEMPOTENT";
}

/**
 * True when grpc-js failed the call before sending it: no connection was up to carry it. grpc-js has
 * no code or flag for this; its pickers (pick-first, round-robin) fail such a call with UNAVAILABLE and
 * a message that starts "No connection established" (or names the policy first). A call that was sent
 * and lost gets another message, so a non-repeatable call is sent again only in this case.
 */
function neverSent(message: string): boolean {
  return /^(?:\w+: )?No connection established/.test(message);
}

/**
 * Whether a call that failed with `attempt.code` may be sent again (after a backoff), for an rpc whose
 * contract declares `idempotency`. Used by every unary call and by WatchJob's reconnects.
 */
export function isRetryable(attempt: FailedAttempt, idempotency: Idempotency): boolean {
  switch (attempt.code) {
    // The server could not be reached, the connection dropped, or the server is shutting down (it ends
    // watches with UNAVAILABLE naming the revision to resume after) or cannot reach its database. A
    // repeatable call goes again; any other only if it never left the client, because one that reached
    // the server may have applied and its repeat would fail as FAILED_PRECONDITION.
    case status.UNAVAILABLE:
      return repeatable(idempotency) || neverSent(attempt.message);
    // The server lost a race with other writers too often and rolled its transaction back (google.rpc.Code
    // ABORTED: retry at a higher level). Nothing was written, so any call may go again.
    case status.ABORTED:
      return true;
    // Not asked for by us, CANCELLED means the server process went away mid-call (Node reports the reset
    // stream so): like UNAVAILABLE for a repeatable call. Cancelled by us, it is our own decision.
    case status.CANCELLED:
      return !attempt.cancelledByUs && repeatable(idempotency);
    // A stream reset mid-frame by a connection torn down ("Received RST_STREAM ...") is a transport
    // failure, not the server's answer; any other INTERNAL is a server bug that a repeat would not fix.
    case status.INTERNAL:
      return repeatable(idempotency) && /RST_STREAM/.test(attempt.message);
    // The caller's own time budget is spent; a repeat would outlive it.
    case status.DEADLINE_EXCEEDED:
      return false;
    // The same request gets the same answer until someone changes it.
    case status.INVALID_ARGUMENT:
    case status.NOT_FOUND:
    case status.ALREADY_EXISTS:
    case status.FAILED_PRECONDITION:
    case status.OUT_OF_RANGE:
    case status.UNIMPLEMENTED:
      return false;
    // A token or permission problem: repeating cannot fix it, and hammering with a bad token looks like an attack.
    case status.UNAUTHENTICATED:
    case status.PERMISSION_DENIED:
      return false;
    // jobwatch sends it for a message over the size limit, which a repeat does not shrink.
    case status.RESOURCE_EXHAUSTED:
      return false;
    // Not an answer jobwatch gives on purpose: a bug or corruption to report, not to paper over.
    case status.UNKNOWN:
    case status.DATA_LOSS:
      return false;
    // OK is not a failure.
    case status.OK:
      return false;
    default:
      return false;
  }
}

// Why a tool call failed, as a message the assistant (or the person behind it) can act on: which job,
// which setting of this MCP server (JOBWATCH_ADDRESS, JOBWATCH_TOKEN) to fix, whether to retry.

import { connectionCause, rejectionReason } from "../client/errors.js";
import {
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  JobNotFoundError,
  JobwatchClientError,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
} from "../client/index.js";

/** A tool's arguments are wrong: the message says which and how to fix them. */
export class ToolInputError extends Error {
  override name = "ToolInputError";
}

/** What the failing call was about, for specific messages. */
export interface ErrorContext {
  /** The jobwatch server this MCP server talks to. */
  address: string;
  /** The job the tool was called for. */
  jobId?: string;
}

const TOKEN_HOWTO =
  "Create one on the jobwatch server host with `jobwatch token create --user NAME --role normal_user` and set " +
  "it as JOBWATCH_TOKEN in the env of this MCP server's configuration.";

/** The missing-token message: every tool answers it until JOBWATCH_TOKEN is set. */
export function noTokenMessage(): string {
  return `no jobwatch token is configured for this MCP server. ${TOKEN_HOWTO}`;
}

/** The message of a failed tool call. */
export function toolErrorMessage(err: unknown, context: ErrorContext): string {
  const { address } = context;
  const job = context.jobId === undefined ? "the job" : `job ${context.jobId}`;
  if (err instanceof ToolInputError) return err.message;
  if (err instanceof JobNotFoundError) {
    // An admin token sees every job: "another user's" is no explanation for it (the server says which).
    return err.callerSees === "all_jobs"
      ? `${job} was not found: the job may have expired (finished jobs are removed after the retention period), ` +
          "or the job_id may be mistyped."
      : `${job} was not found: the job may have expired (finished jobs are removed after the retention period), ` +
          "the job_id may be mistyped, or it belongs to another user (this token sees only its own user's jobs).";
  }
  if (err instanceof UnavailableError) {
    const cause = connectionCause(err.message);
    return cause === undefined
      ? `the jobwatch server at ${address} is unavailable (${err.message})${/retry|try again/i.test(err.message) ? "." : "; retry shortly."}`
      : `cannot reach the jobwatch server at ${address} (${cause}). Check that it is running and that ` +
          "JOBWATCH_ADDRESS in this MCP server's configuration points at it, then retry.";
  }
  if (err instanceof DeadlineExceededError) {
    return `no answer from the jobwatch server at ${address} in time (${err.message}); retry shortly.`;
  }
  if (err instanceof UnauthenticatedError) {
    return `the jobwatch server at ${address} rejected this MCP server's token: ${rejectionReason(err.message)}. ${TOKEN_HOWTO}`;
  }
  if (err instanceof PermissionDeniedError) {
    // The server's message already starts "permission denied:" and says what to leave out for your own
    // jobs: said once each. The hint goes by the permission the server named (ErrorInfo), not by its wording.
    const reason = err.message.replace(/^permission denied:\s*/i, "");
    const hint =
      err.permission === "manage_jobs"
        ? "Only an admin token reads another user's jobs (username) or every user's (all_users)."
        : "Reading and cancelling jobs needs a token whose role grants query_repos (normal_user, power_user or admin).";
    return `permission denied: ${reason}. ${hint}`;
  }
  if (err instanceof InvalidArgumentError) {
    const fields = err.fieldViolations.map((v) => `${v.field}: ${v.description}`);
    return `invalid request: ${fields.length > 0 ? fields.join("; ") : err.message}`;
  }
  if (err instanceof FailedPreconditionError) return `${job} cannot be changed that way: ${err.message}`;
  if (err instanceof JobwatchClientError) return `the jobwatch server answered ${err.codeName}: ${err.message}`;
  return `unexpected error: ${err instanceof Error ? err.message : String(err)}`;
}

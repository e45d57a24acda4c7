// Row <-> domain mappers: the only place that knows how a Job is spelled in SQL columns and in snapshots.

import type { JobEventRow, JobRow, TokenRow } from "./database.js";
import type { Job, JobEvent, JobStatus, JsonObject } from "./job.js";
import type { TokenCredential, TokenInfo } from "./store.js";

/** Number of a BIGINT column that MySQL may hand back as a string. */
function int(value: number | string | bigint): number {
  return Number(value);
}

/** Number or null of a nullable BIGINT column. */
function intOrNull(value: number | string | bigint | null): number | null {
  return value === null ? null : Number(value);
}

/** The domain Job of a jobs row. */
export function jobRowToJob(row: JobRow): Job {
  const job: Job = {
    jobId: row.job_id,
    operationType: row.operation_type,
    status: row.status as JobStatus,
    username: row.username,
    resource: row.resource,
    createdAt: int(row.created_at),
    updatedAt: int(row.updated_at),
    startedAt: intOrNull(row.started_at),
    completedAt: intOrNull(row.completed_at),
    lastHeartbeatAt: intOrNull(row.last_heartbeat_at),
    progress: int(row.progress),
    phase: row.phase,
    detail: row.detail,
    result: row.result === null ? null : (JSON.parse(row.result) as JsonObject),
    error: row.error,
    cancelRequested: int(row.cancel_requested) === 1,
    cancelReason: row.cancel_reason,
    revision: int(row.revision),
  };
  // Left out when unset, so jobs without one compare and serialize as before the column existed.
  if (row.rate_anchor_at !== null && row.rate_anchor_at !== undefined && row.rate_anchor_progress !== null) {
    job.rateAnchor = { at: int(row.rate_anchor_at), progress: Number(row.rate_anchor_progress) };
  }
  if (row.trace_context !== null && row.trace_context !== undefined) job.traceContext = row.trace_context;
  return job;
}

/** JSON text of a job result (null stays null). */
export function resultToText(result: JsonObject | null): string | null {
  return result === null ? null : JSON.stringify(result);
}

/** The snapshot text stored in job_events: the whole domain Job as JSON. */
export function jobToSnapshot(job: Job): string {
  return JSON.stringify(job);
}

/** The Job of a job_events snapshot. */
export function snapshotToJob(snapshot: string): Job {
  return JSON.parse(snapshot) as Job;
}

/** One history entry of a job_events row. */
export function eventRowToJobEvent(
  row: Pick<JobEventRow, "revision" | "at" | "status" | "progress" | "phase" | "detail" | "cancel_requested" | "error">,
): JobEvent {
  return {
    revision: int(row.revision),
    at: int(row.at),
    status: row.status as JobStatus,
    progress: int(row.progress),
    phase: row.phase,
    detail: row.detail,
    cancelRequested: int(row.cancel_requested) === 1,
    error: row.error,
  };
}

/** A token as listed (no secret). */
export function tokenRowToTokenInfo(row: TokenRow): TokenInfo {
  return {
    tokenId: row.token_id,
    username: row.username,
    role: row.role,
    createdAt: int(row.created_at),
    revokedAt: intOrNull(row.revoked_at),
  };
}

/** A token with its secret's hash, for the authenticator. */
export function tokenRowToCredential(
  row: Pick<TokenRow, "token_id" | "username" | "role" | "secret_hash">,
): TokenCredential {
  return { tokenId: row.token_id, username: row.username, role: row.role, secretHash: row.secret_hash };
}

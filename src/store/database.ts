// Table types of the jobwatch schema, as Kysely sees them. Times are epoch milliseconds (BIGINT) on
// both dialects: better-sqlite3 cannot bind a Date and MySQL DATETIME has no zone.
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from "kysely";

/** MySQL returns BIGINT columns as strings or numbers depending on size; we read them through Number(). */
type Int64 = ColumnType<number, number, number>;

/** One background job and its current state. */
interface JobsTable {
  job_id: string;
  operation_type: string;
  username: string;
  resource: string | null;
  /** The client's idempotency key of CreateJob; unique. */
  request_id: string | null;
  /** sha256 of (operation_type, resource) while the job is PENDING or RUNNING and has a resource, else NULL; unique. */
  active_key: string | null;
  status: string;
  progress: number;
  phase: string | null;
  detail: string | null;
  /** JSON text of the result Struct. */
  result: string | null;
  error: string | null;
  /** 0 or 1. */
  cancel_requested: number;
  cancel_reason: string | null;
  /** When cancellation was requested (for the grace period), else NULL. */
  cancel_requested_at: Int64 | null;
  revision: Int64;
  created_at: Int64;
  updated_at: Int64;
  started_at: Int64 | null;
  completed_at: Int64 | null;
  last_heartbeat_at: Int64 | null;
  /** When the job's last progress change entered the history (progress within a phase is recorded at most once a second). */
  history_at: Int64 | null;
  /**
   * The rate anchor (lifecycle.ts rateAnchorAfter): a point (time, progress) 2 to 4 minutes back on the
   * job's progress line, from which the estimate measures its progress rate; NULL until the job has run
   * that long (the rate is then measured from started_at and 0%).
   */
  rate_anchor_at: Int64 | null;
  /** Progress at rate_anchor_at; fractional, as the anchor is interpolated. */
  rate_anchor_progress: number | null;
  /** The W3C traceparent ("00-<trace id>-<span id>-<flags>") of the traced CreateJob that made the job, else NULL. */
  trace_context: string | null;
}

/** One change of a job: the change feed that replicas poll, and (recorded = 1) the job's history. */
interface JobEventsTable {
  /** Assigned by the database (autoincrement); read through Number() like every BIGINT. */
  seq: Generated<number>;
  job_id: string;
  revision: Int64;
  at: Int64;
  status: string;
  progress: number;
  phase: string | null;
  detail: string | null;
  cancel_requested: number;
  error: string | null;
  /** 1 when the event belongs to the job's history; 0 when it only feeds watchers and is pruned soon. */
  recorded: number;
  /** JSON of the whole job at this revision, so a watcher on another replica sees every revision. */
  snapshot: string;
  /**
   * The revision again when the status or the cancel flag differs from the revision before (or this is
   * revision 1), else NULL: the changes a resuming watcher must not miss, indexed by (job_id, transition_revision).
   */
  transition_revision: Int64 | null;
}

/** An API token. Only a hash of the secret is stored. */
interface TokensTable {
  token_id: string;
  username: string;
  role: string;
  secret_hash: string;
  created_at: Int64;
  revoked_at: Int64 | null;
}

/** How many jobs there are per user, operation type and status; kept with every write (GetJobStatistics). */
interface JobCountsTable {
  username: string;
  operation_type: string;
  status: string;
  n: Int64;
}

/**
 * Finished jobs per user ('' for every user), operation type ('' for every type), hour of completion
 * (slice_start, epoch ms) and duration bucket (duration-histogram.ts); kept with every write
 * (GetJobStatistics' percentiles).
 */
interface DurationHistogramTable {
  username: string;
  operation_type: string;
  slice_start: Int64;
  bucket: number;
  n: Int64;
  /** Of those, the jobs that COMPLETED. */
  completed: Int64;
}

/** A registered webhook (webhooks.ts). */
interface WebhooksTable {
  webhook_id: string;
  owner: string;
  url: string;
  /** The signing secret, "whsec_<base64>" (it must be kept to sign: not a hash). */
  secret: string;
  /** ",type1,type2," or "" for every type. */
  operation_types: string;
  /** ",completed,failed,": the statuses whose reaching is delivered. */
  statuses: string;
  /** 0 or 1: every user's jobs, not only the owner's. */
  all_users: number;
  created_at: Int64;
}

/** The webhook outbox: one transition to tell one webhook. */
interface WebhookDeliveriesTable {
  delivery_seq: Generated<number>;
  webhook_id: string;
  job_id: string;
  revision: Int64;
  /** The status the job reached. */
  status: string;
  /** pending | delivered | failed */
  state: string;
  attempts: number;
  next_attempt_at: Int64;
  /** When the current round of attempts began (created or replayed). */
  since: Int64;
  /** The dispatcher holding it, until lease_until; NULL when none. */
  lease_owner: string | null;
  lease_until: Int64 | null;
  delivered_at: Int64 | null;
  created_at: Int64;
}

/** One attempt of a delivery. */
interface WebhookAttemptsTable {
  delivery_seq: Int64;
  attempt: number;
  at: Int64;
  /** The receiver's HTTP status; NULL when there was no answer. */
  http_status: number | null;
  error: string | null;
  latency_ms: number;
}

/** The whole schema. */
export interface Database {
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_attempts: WebhookAttemptsTable;
  jobs: JobsTable;
  job_counts: JobCountsTable;
  duration_histogram: DurationHistogramTable;
  job_events: JobEventsTable;
  tokens: TokensTable;
}

export type JobRow = Selectable<JobsTable>;
export type NewJobRow = Insertable<JobsTable>;
export type JobRowUpdate = Updateable<JobsTable>;
export type JobEventRow = Selectable<JobEventsTable>;
export type NewJobEventRow = Insertable<JobEventsTable>;
export type TokenRow = Selectable<TokensTable>;

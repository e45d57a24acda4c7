// The store's contract: every query jobwatch makes, behind one interface, on SQLite or MySQL.
import type { FinishedRun, Job, JobEvent, JobStatus, JsonObject } from "./job.js";
import type {
  AttemptOutcome,
  ClaimedDelivery,
  DeliveryAttempt,
  DeliveryBacklog,
  DeliveryRoom,
  ListedDelivery,
  NewWebhook,
  Webhook,
  WebhookDelivery,
} from "./webhooks.js";

/** Input of createJob; validated by the caller. */
export interface NewJob {
  operationType: string;
  username: string;
  requestId?: string | undefined;
  resource?: string | undefined;
  /** The W3C traceparent of the CreateJob call, kept with the job (traced servers only). */
  traceContext?: string | undefined;
}

/** A job change as the change feed carries it. */
export interface FeedEntry {
  seq: number;
  jobId: string;
  revision: number;
}

/** seqs from `from` to `to`, both included. */
export interface SeqRange {
  from: number;
  to: number;
}

/** Filters and page of listJobs. */
export interface ListJobsQuery {
  /** Only jobs of this user; undefined = every user. */
  username?: string | undefined;
  statuses?: readonly JobStatus[] | undefined;
  operationType?: string | undefined;
  /** Only jobs acting on this resource. */
  resource?: string | undefined;
  /** Inclusive lower bound of created_at (ms). */
  createdAfter?: number | undefined;
  /** Exclusive upper bound of created_at (ms). */
  createdBefore?: number | undefined;
  /** How many jobs at most (ListJobs asks 1-101). */
  limit: number;
  /** Keyset cursor: the (createdAt, jobId) of the last job of the previous page. */
  after?: { createdAt: number; jobId: string } | undefined;
}

/** Which part of a job's history getHistory reads. */
export interface HistoryPage {
  /** Events after this revision; default 0. */
  afterRevision?: number | undefined;
  /** At most this many; default 10,000. */
  limit?: number | undefined;
}

/** Figures of getStatistics. */
export interface JobStatistics {
  byStatus: Record<JobStatus, number>;
  total: number;
  byOperationType: Record<string, number>;
  windowStart: number;
  finishedInWindow: number;
  completedInWindow: number;
  /** Durations in ms; null when no job finished in the window. */
  p50DurationMs: number | null;
  p95DurationMs: number | null;
  /**
   * The same per operation type: the MAX_DURATION_TYPES largest types, those with a job finished in the window;
   * {} unless asked (StatisticsOptions.durationsByOperationType).
   */
  durationsByOperationType: Record<string, Percentiles>;
}

/** What getStatistics computes beyond the counts and the overall figures. */
export interface StatisticsOptions {
  /** Also durationsByOperationType (p50/p95 of the largest types): costs several times the rest. */
  durationsByOperationType?: boolean | undefined;
}

/** The durations of one operation type's jobs finished in the window. */
export interface Percentiles {
  /** How many finished (at least 1). */
  finished: number;
  p50DurationMs: number;
  p95DurationMs: number;
}

/** An API token as listed (never the secret). */
export interface TokenInfo {
  tokenId: string;
  username: string;
  role: string;
  createdAt: number;
  revokedAt: number | null;
}

/** An active token with its secret's hash, for the authenticator's cache. */
export interface TokenCredential {
  tokenId: string;
  username: string;
  role: string;
  secretHash: string;
}

/**
 * Every query jobwatch makes. Transitions are atomic against the stored row (a conditional update on
 * the revision): concurrent writers in one process or several never lose an update or reuse a revision.
 * Illegal transitions throw FailedPreconditionError naming the current status; unknown ids throw
 * NotFoundError. Every change writes a job_events row in the same transaction.
 */
export interface JobStore {
  /** Applies pending migrations. */
  migrate(): Promise<void>;
  /**
   * Throws unless the database can serve: it answers a read of a real table (and, on Galera, the node
   * is ready, in the primary component).
   */
  ping(): Promise<void>;
  close(): Promise<void>;

  // --- jobs ---
  /**
   * A new PENDING job. A requestId already used returns that job (whoever created it: check its
   * username). AlreadyExistsError (ACTIVE_JOB_EXISTS, {job_id}) while another job on the same
   * (operationType, resource) is PENDING or RUNNING.
   */
  createJob(input: NewJob): Promise<Job>;
  /**
   * undefined when no such job, or with `visibleTo` when it belongs to another user (decided before any
   * large column is read).
   */
  getJob(jobId: string, visibleTo?: string): Promise<Job | undefined>;
  /** True when the job exists and (with `visibleTo`) belongs to that user; reads no large column. */
  jobExists(jobId: string, visibleTo?: string): Promise<boolean>;
  startJob(jobId: string): Promise<Job>;
  reportProgress(jobId: string, progress: number, phase?: string, detail?: string): Promise<Job>;
  heartbeat(jobId: string): Promise<Job>;
  completeJob(jobId: string, result: JsonObject | null): Promise<Job>;
  failJob(jobId: string, error: string): Promise<Job>;
  markCancelled(jobId: string): Promise<Job>;
  /** PENDING -> CANCELLED; RUNNING -> cancel_requested; CANCELLED -> unchanged; else FailedPrecondition. */
  cancelJob(jobId: string, reason?: string): Promise<Job>;
  listJobs(query: ListJobsQuery): Promise<Job[]>;
  getStatistics(username: string | undefined, windowMs: number, options?: StatisticsOptions): Promise<JobStatistics>;
  /** The recorded changes after `afterRevision` (default 0), oldest first, at most `limit` (default 10,000). */
  getHistory(jobId: string, page?: HistoryPage): Promise<JobEvent[]>;
  /**
   * The last `limit` COMPLETED jobs of the operation type that ran, newest first: the history behind
   * completion estimates (one bounded, index-backed read).
   */
  recentRuns(operationType: string, limit: number): Promise<FinishedRun[]>;

  // --- change feed ---
  /**
   * The seq to start reading the feed after: the highest seq in job_events (0 when empty), or on MySQL
   * the last one before a seq that may still be committing, so nothing after it is missed.
   */
  latestSeq(): Promise<number>;
  /**
   * Feed entries with seq > afterSeq, in seq order, at most limit, as committed now. On MySQL a seq is
   * taken at INSERT but visible at COMMIT, so a hole may fill later: the reader (ChangeFeed) keeps track.
   */
  readFeed(afterSeq: number, limit: number): Promise<FeedEntry[]>;
  /**
   * Feed entries whose seq lies in one of the ranges (the holes a reader waits on), in seq order, at most limit.
   * With `causal`, on Galera the read first waits until this node has applied every write committed on any node
   * (wsrep_sync_wait): the last look before a hole is given up.
   */
  readFeedRanges(ranges: readonly SeqRange[], limit: number, options?: { causal?: boolean }): Promise<FeedEntry[]>;
  /**
   * How long ago the oldest transaction still open on this database server that has written rows began, in ms; null
   * when none is open, undefined when it cannot be told (MySQL without the PROCESS privilege). The change feed asks
   * before giving a hole up: a transaction holding a seq began before the hole was seen, so a hole older than every
   * open writer is never going to fill. SQLite: always null (one writer at a time, seq order is commit order).
   */
  oldestOpenWriterMs(): Promise<number | null | undefined>;
  /** The job as of each of the given feed seqs (same order as asked; missing ones left out). */
  snapshotsAt(seqs: readonly number[]): Promise<Job[]>;
  /** The job as of each revision in (afterRevision, beforeRevision), in order, from job_events. */
  snapshotsBetween(jobId: string, afterRevision: number, beforeRevision: number): Promise<Job[]>;
  /**
   * The job as of each revision in (afterRevision, beforeRevision) at which its status or cancel flag
   * changed (from the revision before), in order, at most `limit`: O(transitions), not O(revisions).
   */
  transitionsBetween(jobId: string, afterRevision: number, beforeRevision: number, limit: number): Promise<Job[]>;

  // --- sweepers (safe with many replicas: each move is a conditional update) ---
  failStaleJobs(staleBefore: number): Promise<Job[]>;
  cancelUnconfirmed(requestedBefore: number): Promise<Job[]>;
  /**
   * Deletes up to `batch` finished jobs completed before `before`, their events first in bounded chunks
   * (each its own short transaction); returns how many jobs. Cut short, it leaves the jobs for the next call.
   */
  deleteExpired(before: number, batch: number): Promise<number>;
  /** Deletes feed-only (unrecorded) events older than `before`. */
  pruneFeed(before: number): Promise<number>;

  // --- tokens ---
  createToken(t: { tokenId: string; username: string; role: string; secretHash: string }): Promise<TokenInfo>;
  listTokens(): Promise<TokenInfo[]>;
  /** Marks a token revoked; NotFoundError when unknown; idempotent. */
  revokeToken(tokenId: string): Promise<TokenInfo>;
  activeTokens(): Promise<TokenCredential[]>;
  countTokens(): Promise<number>;

  // --- webhooks (webhooks.ts; the outbox rows are written by the transitions themselves) ---
  createWebhook(w: NewWebhook): Promise<Webhook>;
  /** The owner's webhooks (everyone's with undefined), oldest first, at most 1000. */
  listWebhooks(owner: string | undefined): Promise<Webhook[]>;
  getWebhook(webhookId: string): Promise<Webhook | undefined>;
  /** Removes the webhook, its outbox and attempts; false when there was none. */
  deleteWebhook(webhookId: string): Promise<boolean>;
  /**
   * Leases up to `limit` due deliveries to `owner` for `leaseMs` (each job's lowest pending revision only,
   * at most room.perWebhook in flight per webhook); of dispatchers racing for one, on any replica, one wins.
   */
  claimDeliveries(owner: string, leaseMs: number, limit: number, room: DeliveryRoom): Promise<ClaimedDelivery[]>;
  /**
   * Records an attempt of a delivery `owner` claimed, and its outcome; the lease ends. False, and nothing
   * written, when the lease is no longer `owner`'s (it ran out and another dispatcher claimed the delivery).
   */
  finishDelivery(
    owner: string,
    delivery: Pick<WebhookDelivery, "deliverySeq" | "attempts">,
    attempt: DeliveryAttempt,
    outcome: AttemptOutcome,
  ): Promise<boolean>;
  /** A webhook's deliveries, newest first, with their last attempts. */
  listDeliveries(
    webhookId: string,
    query: { jobId?: string | undefined; limit: number; beforeSeq?: number | undefined },
  ): Promise<ListedDelivery[]>;
  /** A job's deliveries to the webhook from `fromRevision` on, pending and due again; how many. */
  replayDeliveries(webhookId: string, jobId: string, fromRevision: number): Promise<number>;
  /** Pending deliveries in the outbox (all webhooks, all replicas) and when the oldest's round began. */
  deliveryBacklog(): Promise<DeliveryBacklog>;
}

// The JobStore over Kysely, on SQLite (better-sqlite3) and MySQL/MariaDB (mysql2): a thin facade over the query files.

import type { Kysely } from "kysely";
import { sql } from "kysely";
import type { Dialect, OpenDatabase } from "./connect.js";
import type { Database } from "./database.js";
import {
  latestSeq,
  oldestOpenWriterMs,
  readFeed,
  readFeedRanges,
  snapshotsAt,
  snapshotsBetween,
  transitionsBetween,
} from "./feed.js";
import type { FinishedRun, Job, JobEvent, JsonObject } from "./job.js";
import { createJob, getHistory, getJob, jobExists, listJobs, mustTransition } from "./jobs.js";
import {
  cancelRule,
  completeRule,
  failRule,
  heartbeatRule,
  markCancelledRule,
  progressRule,
  startRule,
} from "./lifecycle.js";
import { migrateToLatest } from "./migrations.js";
import { resultToText } from "./rows.js";
import { recentRuns } from "./run-history.js";
import { getStatistics } from "./statistics.js";
import type {
  FeedEntry,
  HistoryPage,
  JobStatistics,
  JobStore,
  ListJobsQuery,
  NewJob,
  SeqRange,
  StatisticsOptions,
  TokenCredential,
  TokenInfo,
} from "./store.js";
import { cancelUnconfirmed, deleteExpired, failStaleJobs, pruneFeed } from "./sweeps.js";
import { activeTokens, countTokens, createToken, listTokens, revokeToken } from "./tokens.js";
import type { StoreDb } from "./transaction.js";
import { createStoreDb } from "./transaction.js";
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
import {
  claimDeliveries,
  createWebhook,
  deleteWebhook,
  deliveryBacklog,
  finishDelivery,
  getWebhook,
  listDeliveries,
  listWebhooks,
  replayDeliveries,
} from "./webhooks.js";

/** Options of SqlJobStore. */
export interface SqlJobStoreOptions {
  /** The clock, epoch ms; tests pass one they can move. */
  now?: () => number;
  /**
   * MySQL only: how recent a hole in seq must be for latestSeq to stop before it. An auto-increment
   * value is taken at INSERT but becomes visible at COMMIT, so a later seq can be seen before an earlier
   * one; a hole that stays is a rolled-back (or pruned) insert.
   */
  feedGapGraceMs?: number;
  /**
   * Retention: the most job_events rows one DELETE removes (default 5000). Each such statement is its
   * own short transaction, so retention never holds locks on a large part of the table.
   */
  retentionChunkRows?: number;
  /**
   * Statistics: windows with at most this many finished jobs get exact percentiles (their durations read
   * and sorted); larger ones are ranked from the duration histogram, within 1%. Default 2,000.
   */
  statisticsExactMax?: number;
}

/** How often a SQLite store refreshes the planner's statistics (PRAGMA optimize). */
const OPTIMIZE_INTERVAL_MS = 3_600_000;

/** JobStore on a SQL database; see JobStore for the contract. Each method is one function of a query file. */
export class SqlJobStore implements JobStore {
  /** Which SQL dialect this store speaks. */
  readonly dialect: Dialect;
  /** The Kysely instance (for tests and tools; the rest of jobwatch goes through the methods). */
  readonly db: Kysely<Database>;
  readonly #open: OpenDatabase;
  readonly #s: StoreDb;
  readonly #feedGapGraceMs: number;
  readonly #retentionChunkRows: number;
  readonly #statisticsExactMax: number | undefined;
  #optimizer: NodeJS.Timeout | undefined;

  constructor(open: OpenDatabase, options: SqlJobStoreOptions = {}) {
    this.#open = open;
    this.dialect = open.dialect;
    this.db = open.db;
    this.#s = createStoreDb(open, options.now ?? Date.now);
    this.#feedGapGraceMs = options.feedGapGraceMs ?? 3000;
    this.#retentionChunkRows = options.retentionChunkRows ?? 5000;
    this.#statisticsExactMax = options.statisticsExactMax;
  }

  async migrate(): Promise<void> {
    await migrateToLatest(this.#open);
    const open = this.#open;
    if (open.dialect !== "sqlite" || this.#optimizer !== undefined) return;
    // SQLite's planner needs statistics to pick the right index (username + status at a million jobs: 30 ms
    // without, 1.7 ms with); PRAGMA optimize refreshes them where the tables changed a lot, at start and
    // then hourly, as SQLite recommends for long-lived connections.
    open.sqlite.pragma("optimize=0x10002");
    this.#optimizer = setInterval(() => open.sqlite.pragma("optimize"), OPTIMIZE_INTERVAL_MS);
    this.#optimizer.unref();
  }

  async ping(): Promise<void> {
    // A real read of a small table: `select 1` answers even on a Galera node outside the primary
    // component, whose every table read fails (ER_UNKNOWN_COM_ERROR 1047). Before the first
    // migration there is no table: reaching the database is all a ping can prove then.
    await this.db
      .selectFrom("tokens")
      .select("token_id")
      .limit(1)
      .execute()
      .catch((error: unknown) => {
        if (!isNoSuchTable(error)) throw error;
      });
    if (await this.#s.causal.isGalera()) {
      const { rows } = await sql<{ Value: string }>`show status like 'wsrep_ready'`.execute(this.db);
      if (rows[0]?.Value !== "ON") {
        // The code a Galera node answers queries with while not ready, so it classifies as that fault.
        throw Object.assign(new Error(`the Galera node is not ready (wsrep_ready=${rows[0]?.Value ?? "?"})`), {
          code: "ER_UNKNOWN_COM_ERROR",
        });
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#optimizer);
    await this.db.destroy();
  }

  // --- jobs ---

  async createJob(input: NewJob): Promise<Job> {
    return createJob(this.#s, input);
  }

  getJob(jobId: string, visibleTo?: string): Promise<Job | undefined> {
    return getJob(this.#s, jobId, visibleTo);
  }

  async jobExists(jobId: string, visibleTo?: string): Promise<boolean> {
    return jobExists(this.#s, jobId, visibleTo);
  }

  async startJob(jobId: string): Promise<Job> {
    return mustTransition(this.#s, jobId, startRule());
  }

  async reportProgress(jobId: string, progress: number, phase?: string, detail?: string): Promise<Job> {
    return mustTransition(this.#s, jobId, progressRule(progress, phase, detail));
  }

  async heartbeat(jobId: string): Promise<Job> {
    return mustTransition(this.#s, jobId, heartbeatRule());
  }

  async completeJob(jobId: string, result: JsonObject | null): Promise<Job> {
    return mustTransition(this.#s, jobId, completeRule(resultToText(result)));
  }

  async failJob(jobId: string, error: string): Promise<Job> {
    return mustTransition(this.#s, jobId, failRule(error));
  }

  async markCancelled(jobId: string): Promise<Job> {
    return mustTransition(this.#s, jobId, markCancelledRule());
  }

  async cancelJob(jobId: string, reason?: string): Promise<Job> {
    return mustTransition(this.#s, jobId, cancelRule(reason));
  }

  async listJobs(query: ListJobsQuery): Promise<Job[]> {
    return listJobs(this.#s, query);
  }

  async getStatistics(
    username: string | undefined,
    windowMs: number,
    options: StatisticsOptions = {},
  ): Promise<JobStatistics> {
    return getStatistics(this.#s, username, windowMs, options, this.#statisticsExactMax);
  }

  async getHistory(jobId: string, page?: HistoryPage): Promise<JobEvent[]> {
    return getHistory(this.#s, jobId, page);
  }

  async recentRuns(operationType: string, limit: number): Promise<FinishedRun[]> {
    return recentRuns(this.#s, operationType, limit);
  }

  // --- change feed ---

  async latestSeq(): Promise<number> {
    return latestSeq(this.#s, this.#feedGapGraceMs);
  }

  async readFeed(afterSeq: number, limit: number): Promise<FeedEntry[]> {
    return readFeed(this.#s, afterSeq, limit);
  }

  async readFeedRanges(
    ranges: readonly SeqRange[],
    limit: number,
    options?: { causal?: boolean },
  ): Promise<FeedEntry[]> {
    return readFeedRanges(this.#s, ranges, limit, options);
  }

  async oldestOpenWriterMs(): Promise<number | null | undefined> {
    return oldestOpenWriterMs(this.#s);
  }

  async snapshotsAt(seqs: readonly number[]): Promise<Job[]> {
    return snapshotsAt(this.#s, seqs);
  }

  async snapshotsBetween(jobId: string, afterRevision: number, beforeRevision: number): Promise<Job[]> {
    return snapshotsBetween(this.#s, jobId, afterRevision, beforeRevision);
  }

  async transitionsBetween(
    jobId: string,
    afterRevision: number,
    beforeRevision: number,
    limit: number,
  ): Promise<Job[]> {
    return transitionsBetween(this.#s, jobId, afterRevision, beforeRevision, limit);
  }

  // --- sweepers ---

  async failStaleJobs(staleBefore: number): Promise<Job[]> {
    return failStaleJobs(this.#s, staleBefore);
  }

  async cancelUnconfirmed(requestedBefore: number): Promise<Job[]> {
    return cancelUnconfirmed(this.#s, requestedBefore);
  }

  async deleteExpired(before: number, batch: number): Promise<number> {
    return deleteExpired(this.#s, before, batch, this.#retentionChunkRows);
  }

  async pruneFeed(before: number): Promise<number> {
    return pruneFeed(this.#s, before);
  }

  // --- tokens ---

  async createToken(t: { tokenId: string; username: string; role: string; secretHash: string }): Promise<TokenInfo> {
    return createToken(this.#s, t);
  }

  async listTokens(): Promise<TokenInfo[]> {
    return listTokens(this.#s);
  }

  async revokeToken(tokenId: string): Promise<TokenInfo> {
    return revokeToken(this.#s, tokenId);
  }

  async activeTokens(): Promise<TokenCredential[]> {
    return activeTokens(this.#s);
  }

  async countTokens(): Promise<number> {
    return countTokens(this.#s);
  }

  // --- webhooks ---

  async createWebhook(w: NewWebhook): Promise<Webhook> {
    return createWebhook(this.#s, w);
  }

  async listWebhooks(owner: string | undefined): Promise<Webhook[]> {
    return listWebhooks(this.#s, owner);
  }

  async getWebhook(webhookId: string): Promise<Webhook | undefined> {
    return getWebhook(this.#s, webhookId);
  }

  async deleteWebhook(webhookId: string): Promise<boolean> {
    return deleteWebhook(this.#s, webhookId);
  }

  async claimDeliveries(owner: string, leaseMs: number, limit: number, room: DeliveryRoom): Promise<ClaimedDelivery[]> {
    return claimDeliveries(this.#s, owner, leaseMs, limit, room);
  }

  async finishDelivery(
    owner: string,
    delivery: Pick<WebhookDelivery, "deliverySeq" | "attempts">,
    attempt: DeliveryAttempt,
    outcome: AttemptOutcome,
  ): Promise<boolean> {
    return finishDelivery(this.#s, owner, delivery, attempt, outcome);
  }

  async listDeliveries(
    webhookId: string,
    query: { jobId?: string | undefined; limit: number; beforeSeq?: number | undefined },
  ): Promise<ListedDelivery[]> {
    return listDeliveries(this.#s, webhookId, query);
  }

  async replayDeliveries(webhookId: string, jobId: string, fromRevision: number): Promise<number> {
    return replayDeliveries(this.#s, webhookId, jobId, fromRevision);
  }

  async deliveryBacklog(): Promise<DeliveryBacklog> {
    return deliveryBacklog(this.#s);
  }
}

/** The table does not exist (a database not migrated yet), on either dialect. */
function isNoSuchTable(error: unknown): boolean {
  const { code, message } = (typeof error === "object" && error !== null ? error : {}) as {
    code?: unknown;
    message?: unknown;
  };
  return code === "ER_NO_SUCH_TABLE" || (typeof message === "string" && /^no such table/.test(message));
}

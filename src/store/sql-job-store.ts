// The JobStore over Kysely: every query jobwatch makes, on SQLite (better-sqlite3) and MySQL/MariaDB (mysql2).
import { createHash, randomUUID } from "node:crypto";
import { setImmediate as nextTurn, setTimeout as sleep } from "node:timers/promises";
import { sql } from "kysely";
import type { CompiledQuery, Kysely, QueryResult } from "kysely";
import type SqliteDatabase from "better-sqlite3";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  NotFoundError,
  UnavailableError,
  jobNotFound,
} from "../errors.js";
import { openDatabase } from "./connect.js";
import type { Dialect, OpenDatabase } from "./connect.js";
import type { Database, JobRow, JobRowUpdate, NewJobEventRow, NewJobRow } from "./database.js";
import { JOB_STATUSES, TERMINAL_STATUSES, isTerminal } from "./job.js";
import type { Job, JobEvent, JobStatus, JsonObject } from "./job.js";
import { migrateToLatest } from "./migrations.js";
import {
  eventRowToJobEvent,
  jobRowToJob,
  jobToSnapshot,
  resultToText,
  snapshotToJob,
  tokenRowToCredential,
  tokenRowToTokenInfo,
} from "./rows.js";
import type { FeedEntry, JobStatistics, JobStore, ListJobsQuery, NewJob, TokenCredential, TokenInfo } from "./store.js";

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
}

/** A write transaction as a generator: it yields compiled statements and receives their results. */
type TxBody<T> = () => Generator<CompiledQuery, T, QueryResult<Record<string, unknown>>>;

/** What a transition does to a job: the columns it sets and whether the change enters the history. */
interface Change {
  set: JobRowUpdate;
  recorded: boolean;
}

/** Progress-only changes enter the history at most once per this many ms per job. */
const HISTORY_PROGRESS_INTERVAL_MS = 1000;
/** Attempts of a conditional update before giving up (each retry re-reads the row). */
const MAX_TRANSITION_ATTEMPTS = 100;
/** Attempts of a transaction that failed on a deadlock, lock timeout or SQLITE_BUSY. */
const MAX_TX_ATTEMPTS = 6;
/** Jobs a sweeper moves per call; the next sweep takes the rest. */
const SWEEP_BATCH = 500;
/** The statuses of jobs that never change again, as a list for `where status in (...)`. */
const TERMINAL: readonly JobStatus[] = [...TERMINAL_STATUSES];

/** Opens `url` and returns a store on it (call migrate() before use). */
export function createStore(url: string, options: SqlJobStoreOptions = {}): SqlJobStore {
  return new SqlJobStore(openDatabase(url), options);
}

/** JobStore on a SQL database; see JobStore for the contract. */
export class SqlJobStore implements JobStore {
  /** Which SQL dialect this store speaks. */
  readonly dialect: Dialect;
  /** The Kysely instance (for tests and tools; the rest of jobwatch goes through the methods). */
  readonly db: Kysely<Database>;
  readonly #open: OpenDatabase;
  readonly #sqlite: SqliteDatabase.Database | undefined;
  readonly #now: () => number;
  readonly #feedGapGraceMs: number;
  readonly #retentionChunkRows: number;
  readonly #statements = new Map<string, SqliteDatabase.Statement>();

  constructor(open: OpenDatabase, options: SqlJobStoreOptions = {}) {
    this.#open = open;
    this.dialect = open.dialect;
    this.db = open.db;
    this.#sqlite = open.dialect === "sqlite" ? open.sqlite : undefined;
    this.#now = options.now ?? Date.now;
    this.#feedGapGraceMs = options.feedGapGraceMs ?? 3000;
    this.#retentionChunkRows = options.retentionChunkRows ?? 5000;
  }

  async migrate(): Promise<void> {
    await migrateToLatest(this.#open);
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  async close(): Promise<void> {
    this.#statements.clear();
    await this.db.destroy();
  }

  // --- jobs ---

  async createJob(input: NewJob): Promise<Job> {
    const requestId = input.requestId ?? null;
    if (requestId !== null) {
      const existing = await this.#jobByRequestId(requestId);
      if (existing) return existing;
    }
    const resource = input.resource ?? null;
    const activeKey = resource === null ? null : activeKeyOf(input.operationType, resource);
    for (let attempt = 1; attempt <= 5; attempt++) {
      const now = this.#now();
      const row: NewJobRow = {
        job_id: randomUUID(),
        operation_type: input.operationType,
        username: input.username,
        resource,
        request_id: requestId,
        active_key: activeKey,
        status: "pending",
        progress: 0,
        phase: null,
        detail: null,
        result: null,
        error: null,
        cancel_requested: 0,
        cancel_reason: null,
        cancel_requested_at: null,
        revision: 1,
        created_at: now,
        updated_at: now,
        started_at: null,
        completed_at: null,
        last_heartbeat_at: null,
        history_at: null,
      };
      const job = jobRowToJob(row as JobRow);
      const db = this.db;
      try {
        await this.#write(function* () {
          yield db.insertInto("jobs").values(row).compile();
          yield db
            .insertInto("job_events")
            .values(eventRow(job, now, true))
            .compile();
        });
        return job;
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
      }
      // A unique key said no: a retry of the same request, or an active job on the same resource.
      if (requestId !== null) {
        const existing = await this.#jobByRequestId(requestId);
        if (existing) return existing;
      }
      if (activeKey !== null) {
        const active = await this.db
          .selectFrom("jobs")
          .selectAll()
          .where("active_key", "=", activeKey)
          .executeTakeFirst();
        if (active) {
          throw new AlreadyExistsError(
            `job ${active.job_id} (${active.status.toUpperCase()}) is already working on ${input.operationType} of '${resource}'; ` +
              `wait for it to finish or cancel it`,
            "ACTIVE_JOB_EXISTS",
            { job_id: active.job_id },
          );
        }
      }
      // The conflicting job finished in between: insert again.
    }
    throw new UnavailableError(`could not create the job: the database kept reporting a conflict; try again`);
  }

  async getJob(jobId: string): Promise<Job | undefined> {
    const row = await this.#jobRow(jobId);
    return row ? jobRowToJob(row) : undefined;
  }

  async startJob(jobId: string): Promise<Job> {
    return this.#mustTransition(jobId, (job, _row, now) => {
      if (job.status !== "pending") {
        refuse(
          job,
          "start a job in %s status",
          job.status === "running" ? "it was already started" : "only a PENDING job can be started",
        );
      }
      return { set: { status: "running", started_at: now, last_heartbeat_at: now }, recorded: true };
    });
  }

  async reportProgress(jobId: string, progress: number, phase?: string, detail?: string): Promise<Job> {
    return this.#mustTransition(jobId, (job, row, now) => {
      if (job.status !== "running") refuse(job, "report progress on a job in %s status", "call StartJob first");
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
      return { set, recorded };
    });
  }

  async heartbeat(jobId: string): Promise<Job> {
    return this.#mustTransition(jobId, (job, _row, now) => {
      if (job.status !== "running") refuse(job, "record a heartbeat for a job in %s status", "call StartJob first");
      // A revision of its own (last_heartbeat_at changed) but not history: nothing a person reads changed.
      return { set: { last_heartbeat_at: now }, recorded: false };
    });
  }

  async completeJob(jobId: string, result: JsonObject | null): Promise<Job> {
    const text = resultToText(result);
    return this.#mustTransition(jobId, (job, _row, now) => {
      if (job.status !== "pending" && job.status !== "running") refuse(job, "complete a job in %s status");
      return {
        set: { status: "completed", progress: 100, result: text, completed_at: now, active_key: null },
        recorded: true,
      };
    });
  }

  async failJob(jobId: string, error: string): Promise<Job> {
    return this.#mustTransition(jobId, (job, _row, now) => {
      if (job.status !== "pending" && job.status !== "running") refuse(job, "fail a job in %s status");
      return { set: { status: "failed", error, completed_at: now, active_key: null }, recorded: true };
    });
  }

  async markCancelled(jobId: string): Promise<Job> {
    return this.#mustTransition(jobId, (job, _row, now) => {
      // A PENDING job never has a request: CancelJob cancels it at once.
      if (job.status === "pending") {
        refuse(job, "mark a job in %s status as cancelled", noCancelRequested("RUNNING job"));
      }
      if (job.status !== "running") refuse(job, "mark a job in %s status as cancelled");
      if (!job.cancelRequested) {
        refuse(job, "mark a job in %s status as cancelled", noCancelRequested("job"));
      }
      return { set: { status: "cancelled", completed_at: now, active_key: null }, recorded: true };
    });
  }

  async cancelJob(jobId: string, reason?: string): Promise<Job> {
    const cancelReason = reason === undefined || reason === "" ? null : reason;
    return this.#mustTransition(jobId, (job, _row, now) => {
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
    });
  }

  async listJobs(query: ListJobsQuery): Promise<Job[]> {
    let q = this.db.selectFrom("jobs").selectAll();
    if (query.username !== undefined) q = q.where("username", "=", query.username);
    if (query.statuses !== undefined && query.statuses.length > 0) q = q.where("status", "in", [...query.statuses]);
    if (query.operationType !== undefined) q = q.where("operation_type", "=", query.operationType);
    if (query.createdAfter !== undefined) q = q.where("created_at", ">=", query.createdAfter);
    if (query.createdBefore !== undefined) q = q.where("created_at", "<", query.createdBefore);
    const after = query.after;
    if (after !== undefined) {
      // (created_at, job_id) < (a.createdAt, a.jobId), spelled so the leading range uses the index on both dialects.
      q = q
        .where("created_at", "<=", after.createdAt)
        .where((eb) => eb.or([eb("created_at", "<", after.createdAt), eb("job_id", "<", after.jobId)]));
    }
    const rows = await q.orderBy("created_at", "desc").orderBy("job_id", "desc").limit(query.limit).execute();
    return rows.map(jobRowToJob);
  }

  async getStatistics(username: string | undefined, windowMs: number): Promise<JobStatistics> {
    const windowStart = this.#now() - windowMs;
    const scoped = this.db
      .selectFrom("jobs")
      .$if(username !== undefined, (q) => q.where("username", "=", username as string));
    const finished = scoped.where("status", "in", [...TERMINAL]).where("completed_at", ">=", windowStart);
    // Every figure from one snapshot, so total, by-status and by-operation agree while jobs change;
    // each is one aggregate row or one row per group, never the jobs themselves.
    return this.#read(function* () {
      const statusRows = (yield scoped
        .select(["status", (eb) => eb.fn.countAll<number | string>().as("n")])
        .groupBy("status")
        .compile()).rows as { status: string; n: number | string }[];
      const byStatus = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
      for (const r of statusRows) {
        if ((JOB_STATUSES as readonly string[]).includes(r.status)) byStatus[r.status as JobStatus] = Number(r.n);
      }
      const total = Object.values(byStatus).reduce((a, b) => a + b, 0);

      const opRows = (yield scoped
        .select(["operation_type", (eb) => eb.fn.countAll<number | string>().as("n")])
        .groupBy("operation_type")
        .compile()).rows as { operation_type: string; n: number | string }[];
      const byOperationType: Record<string, number> = {};
      for (const r of opRows) byOperationType[r.operation_type] = Number(r.n);

      const counts = (yield finished
        .select([
          (eb) => eb.fn.countAll<number | string>().as("n"),
          sql<number | string | null>`sum(case when status = 'completed' then 1 else 0 end)`.as("completed"),
        ])
        .compile()).rows[0] as { n: number | string; completed: number | string | null };
      const finishedInWindow = Number(counts.n);
      const completedInWindow = Number(counts.completed ?? 0);

      // Percentiles by rank in SQL (one row each), never by loading the durations.
      function* percentile(p: number): Generator<CompiledQuery, number | null, QueryResult<Record<string, unknown>>> {
        if (finishedInWindow === 0) return null;
        const row = (yield finished
          .select(sql<number | string>`completed_at - coalesce(started_at, created_at)`.as("d"))
          .orderBy("d")
          .limit(1)
          .offset(Math.floor(p * (finishedInWindow - 1)))
          .compile()).rows[0] as { d: number | string } | undefined;
        return row ? Number(row.d) : null;
      }
      return {
        byStatus,
        total,
        byOperationType,
        windowStart,
        finishedInWindow,
        completedInWindow,
        p50DurationMs: yield* percentile(0.5),
        p95DurationMs: yield* percentile(0.95),
      };
    });
  }

  async getHistory(jobId: string): Promise<JobEvent[]> {
    const rows = await this.db
      .selectFrom("job_events")
      .select(["revision", "at", "status", "progress", "phase", "detail", "cancel_requested", "error"])
      .where("job_id", "=", jobId)
      .where("recorded", "=", 1)
      .orderBy("revision")
      .execute();
    return rows.map(eventRowToJobEvent);
  }

  // --- change feed ---

  async latestSeq(): Promise<number> {
    if (this.dialect === "sqlite") {
      // SQLite has one writer at a time: seq order is commit order.
      const row = await this.db
        .selectFrom("job_events")
        .select((eb) => eb.fn.max("seq").as("m"))
        .executeTakeFirst();
      return Number(row?.m ?? 0);
    }
    // MySQL: stop before a recent hole (an insert not yet committed) so a reader starting here misses nothing.
    const rows = await this.db
      .selectFrom("job_events")
      .select(["seq", "at"])
      .orderBy("seq", "desc")
      .limit(200)
      .execute();
    if (rows.length === 0) return 0;
    const asc = rows.map((r) => ({ seq: Number(r.seq), at: Number(r.at) })).reverse();
    const now = this.#now();
    for (let i = 1; i < asc.length; i++) {
      const prev = asc[i - 1]!;
      const cur = asc[i]!;
      if (cur.seq !== prev.seq + 1 && cur.at > now - this.#feedGapGraceMs) return prev.seq;
    }
    return asc[asc.length - 1]!.seq;
  }

  async readFeed(afterSeq: number, limit: number): Promise<FeedEntry[]> {
    // Plain seq order: the reader (the watch hub's ChangeFeed) tracks holes left by seqs that commit
    // out of order, and re-reads them until they fill or time out.
    const rows = await this.db
      .selectFrom("job_events")
      .select(["seq", "job_id", "revision"])
      .where("seq", ">", afterSeq)
      .orderBy("seq")
      .limit(limit)
      .execute();
    return rows.map((r) => ({ seq: Number(r.seq), jobId: r.job_id, revision: Number(r.revision) }));
  }

  async snapshotsAt(seqs: readonly number[]): Promise<Job[]> {
    if (seqs.length === 0) return [];
    const bySeq = new Map<number, Job>();
    for (const chunk of chunks([...new Set(seqs)], 500)) {
      const rows = await this.db
        .selectFrom("job_events")
        .select(["seq", "snapshot"])
        .where("seq", "in", chunk)
        .execute();
      for (const r of rows) bySeq.set(Number(r.seq), snapshotToJob(r.snapshot));
    }
    return seqs.flatMap((s) => {
      const job = bySeq.get(s);
      return job ? [job] : [];
    });
  }

  async snapshotsBetween(jobId: string, afterRevision: number, beforeRevision: number): Promise<Job[]> {
    const rows = await this.db
      .selectFrom("job_events")
      .select("snapshot")
      .where("job_id", "=", jobId)
      .where("revision", ">", afterRevision)
      .where("revision", "<", beforeRevision)
      .orderBy("revision")
      .execute();
    return rows.map((r) => snapshotToJob(r.snapshot));
  }

  // --- sweepers ---

  async failStaleJobs(staleBefore: number): Promise<Job[]> {
    const rows = await this.db
      .selectFrom("jobs")
      .select("job_id")
      .where("status", "=", "running")
      .where("last_heartbeat_at", "<", staleBefore)
      .orderBy("last_heartbeat_at")
      .limit(SWEEP_BATCH)
      .execute();
    return this.#sweep(
      rows.map((r) => r.job_id),
      (job, now) => {
        // Re-checked on the fresh row: another replica may have moved it, or the worker spoke up.
        if (job.status !== "running" || job.lastHeartbeatAt === null || job.lastHeartbeatAt >= staleBefore) return null;
        const error = `worker stopped reporting: no heartbeat since ${new Date(job.lastHeartbeatAt).toISOString()}`;
        return { set: { status: "failed", error, completed_at: now, active_key: null }, recorded: true };
      },
    );
  }

  async cancelUnconfirmed(requestedBefore: number): Promise<Job[]> {
    const rows = await this.db
      .selectFrom("jobs")
      .select("job_id")
      .where("status", "=", "running")
      .where("cancel_requested_at", "<", requestedBefore)
      .where("cancel_requested", "=", 1)
      .orderBy("cancel_requested_at")
      .limit(SWEEP_BATCH)
      .execute();
    return this.#sweep(
      rows.map((r) => r.job_id),
      (job, now, row) => {
        const requestedAt = row.cancel_requested_at === null ? null : Number(row.cancel_requested_at);
        if (job.status !== "running" || !job.cancelRequested || requestedAt === null || requestedAt >= requestedBefore)
          return null;
        const error = "cancelled: the worker never confirmed the cancellation within the grace period";
        return { set: { status: "cancelled", error, completed_at: now, active_key: null }, recorded: true };
      },
    );
  }

  async #sweep(ids: string[], decide: (job: Job, now: number, row: JobRow) => Change | null): Promise<Job[]> {
    const moved: Job[] = [];
    for (const id of ids) {
      const outcome = await this.#transition(id, (job, row, now) => decide(job, now, row));
      if (outcome?.changed) moved.push(outcome.job);
    }
    return moved;
  }

  async deleteExpired(before: number, batch: number): Promise<number> {
    // Ids first, then delete by id: MySQL cannot DELETE ... LIMIT with a subquery on the same table.
    const rows = await this.db
      .selectFrom("jobs")
      .select("job_id")
      .where("status", "in", [...TERMINAL])
      .where("completed_at", "<", before)
      // No ORDER BY: any expired batch will do, and sorting every expired row would cost more than the delete.
      .limit(batch)
      .execute();
    if (rows.length === 0) return 0;
    const ids = rows.map((r) => r.job_id);
    const db = this.db;
    // Their events first, a bounded chunk per statement and transaction: a job that reported progress
    // every second has hundreds of thousands, and one transaction over all of them would hold its
    // locks (MySQL) or the write lock (SQLite) for as long. A job row goes only after its events, so
    // a sweep cut short leaves the job expired and the next sweep carries on.
    const chunk = this.#retentionChunkRows;
    for (;;) {
      const deleted = await this.#write(function* () {
        const r = yield db.deleteFrom("job_events").where("job_id", "in", ids).limit(chunk).compile();
        return Number(r.numAffectedRows ?? 0);
      });
      if (deleted < chunk) break;
      // SQLite writes run synchronously: let other callers in between chunks.
      await nextTurn();
    }
    return this.#write(function* () {
      // Guarded by status as well, so this statement can only ever remove a finished job.
      const r = yield db
        .deleteFrom("jobs")
        .where("job_id", "in", ids)
        .where("status", "in", [...TERMINAL])
        .compile();
      return Number(r.numAffectedRows ?? 0);
    });
  }

  async pruneFeed(before: number): Promise<number> {
    const base = this.db.deleteFrom("job_events").where("recorded", "=", 0).where("at", "<", before);
    if (this.dialect === "sqlite") return Number((await base.executeTakeFirst()).numDeletedRows);
    // MySQL: in batches, so no single statement holds locks on a large part of the table.
    let total = 0;
    for (;;) {
      const n = Number((await base.limit(5000).executeTakeFirst()).numDeletedRows);
      total += n;
      if (n < 5000) return total;
    }
  }

  // --- tokens ---

  async createToken(t: { tokenId: string; username: string; role: string; secretHash: string }): Promise<TokenInfo> {
    const row = {
      token_id: t.tokenId,
      username: t.username,
      role: t.role,
      secret_hash: t.secretHash,
      created_at: this.#now(),
      revoked_at: null,
    };
    await this.db.insertInto("tokens").values(row).execute();
    return tokenRowToTokenInfo(row);
  }

  async listTokens(): Promise<TokenInfo[]> {
    const rows = await this.db.selectFrom("tokens").selectAll().orderBy("created_at").orderBy("token_id").execute();
    return rows.map(tokenRowToTokenInfo);
  }

  async revokeToken(tokenId: string): Promise<TokenInfo> {
    // Only the first revocation sets revoked_at, so revoking twice keeps the original time.
    await this.db
      .updateTable("tokens")
      .set({ revoked_at: this.#now() })
      .where("token_id", "=", tokenId)
      .where("revoked_at", "is", null)
      .execute();
    const row = await this.db.selectFrom("tokens").selectAll().where("token_id", "=", tokenId).executeTakeFirst();
    if (!row) throw new NotFoundError(`token ${tokenId} not found`);
    return tokenRowToTokenInfo(row);
  }

  async activeTokens(): Promise<TokenCredential[]> {
    const rows = await this.db
      .selectFrom("tokens")
      .select(["token_id", "username", "role", "secret_hash"])
      .where("revoked_at", "is", null)
      .execute();
    return rows.map(tokenRowToCredential);
  }

  async countTokens(): Promise<number> {
    const row = await this.db
      .selectFrom("tokens")
      .select((eb) => eb.fn.countAll<number | string>().as("n"))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  // --- machinery ---

  async #jobRow(jobId: string): Promise<JobRow | undefined> {
    return this.db.selectFrom("jobs").selectAll().where("job_id", "=", jobId).executeTakeFirst();
  }

  async #jobByRequestId(requestId: string): Promise<Job | undefined> {
    const row = await this.db.selectFrom("jobs").selectAll().where("request_id", "=", requestId).executeTakeFirst();
    return row ? jobRowToJob(row) : undefined;
  }

  /** #transition for a caller-named job: unknown ids are NotFoundError, and the job is returned. */
  async #mustTransition(jobId: string, decide: (job: Job, row: JobRow, now: number) => Change | null): Promise<Job> {
    const outcome = await this.#transition(jobId, decide);
    if (!outcome) throw jobNotFound(jobId);
    return outcome.job;
  }

  /**
   * Reads the job, lets `decide` check the status (it throws FailedPreconditionError) and name the
   * change (null: nothing to do), then applies it with `UPDATE ... WHERE revision = <read revision>`
   * and the job_events row in one transaction. When another writer got there first the update
   * matches no row and we start over from the read. undefined when the job does not exist.
   */
  async #transition(
    jobId: string,
    decide: (job: Job, row: JobRow, now: number) => Change | null,
  ): Promise<{ job: Job; changed: boolean } | undefined> {
    const db = this.db;
    for (let attempt = 1; ; attempt++) {
      const row = await this.#jobRow(jobId);
      if (!row) return undefined;
      const job = jobRowToJob(row);
      const now = this.#now();
      const change = decide(job, row, now);
      if (change === null) return { job, changed: false };
      const set: JobRowUpdate = { ...change.set, revision: job.revision + 1, updated_at: now };
      const next = jobRowToJob({ ...row, ...set } as JobRow);
      const applied = await this.#write(function* () {
        const r = yield db
          .updateTable("jobs")
          .set(set)
          .where("job_id", "=", jobId)
          .where("revision", "=", job.revision)
          .compile();
        if (Number(r.numAffectedRows ?? 0) !== 1) return false;
        yield db
          .insertInto("job_events")
          .values(eventRow(next, now, change.recorded))
          .compile();
        return true;
      });
      if (applied) return { job: next, changed: true };
      if (attempt >= MAX_TRANSITION_ATTEMPTS) {
        throw new UnavailableError(`job ${jobId} is being changed by too many writers at once; try again`);
      }
      // Jitter, so writers that keep colliding spread out.
      if (attempt > 2) await sleep(Math.random() * Math.min(25, attempt));
    }
  }

  /**
   * Runs a write transaction. SQLite: synchronously inside BEGIN IMMEDIATE on the raw handle, so the
   * write lock is never held across an await. MySQL: a Kysely transaction on one pooled connection.
   * Deadlocks, lock timeouts and SQLITE_BUSY are retried a few times (the body runs again from the start).
   */
  async #write<T>(body: TxBody<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        const sqlite = this.#sqlite;
        if (sqlite !== undefined) {
          return sqlite.transaction(() => drive(body(), (q) => this.#execSync(sqlite, q))).immediate();
        }
        return await this.db
          .transaction()
          .execute((trx) => driveAsync(body(), (q) => trx.executeQuery<Record<string, unknown>>(q)));
      } catch (error) {
        if (!isTransient(error) || attempt >= MAX_TX_ATTEMPTS) throw error;
        await sleep(Math.random() * 20 * attempt);
      }
    }
  }

  /**
   * Runs a read-only transaction on one consistent snapshot. SQLite: synchronously inside a deferred
   * BEGIN on the raw handle, like #write, so the read lock is never held across an await (a Kysely
   * transaction would hold it while the synchronous write path, on the same handle or another
   * connection, could run or busy-wait on the one event loop). MySQL: REPEATABLE READ for this
   * transaction (the session runs READ COMMITTED, where each SELECT sees a new snapshot), read only.
   */
  async #read<T>(body: TxBody<T>): Promise<T> {
    const sqlite = this.#sqlite;
    if (sqlite !== undefined) {
      return sqlite.transaction(() => drive(body(), (q) => this.#execSync(sqlite, q))).deferred();
    }
    return this.db
      .transaction()
      .setIsolationLevel("repeatable read")
      .setAccessMode("read only")
      .execute((trx) => driveAsync(body(), (q) => trx.executeQuery<Record<string, unknown>>(q)));
  }

  #execSync(sqlite: SqliteDatabase.Database, q: CompiledQuery): QueryResult<Record<string, unknown>> {
    let stmt = this.#statements.get(q.sql);
    if (stmt === undefined) {
      stmt = sqlite.prepare(q.sql);
      if (this.#statements.size < 256) this.#statements.set(q.sql, stmt);
    }
    const params = q.parameters as unknown[];
    if (stmt.reader) return { rows: stmt.all(params) as Record<string, unknown>[] };
    const info = stmt.run(params);
    return { rows: [], numAffectedRows: BigInt(info.changes), insertId: BigInt(info.lastInsertRowid) };
  }
}

/** Runs a transaction body to its end, executing each statement it yields with `exec`. */
function drive<T>(
  gen: Generator<CompiledQuery, T, QueryResult<Record<string, unknown>>>,
  exec: (q: CompiledQuery) => QueryResult<Record<string, unknown>>,
): T {
  let step = gen.next();
  while (!step.done) step = gen.next(exec(step.value));
  return step.value;
}

/** drive() with statements that run asynchronously (a Kysely transaction). */
async function driveAsync<T>(
  gen: Generator<CompiledQuery, T, QueryResult<Record<string, unknown>>>,
  exec: (q: CompiledQuery) => Promise<QueryResult<Record<string, unknown>>>,
): Promise<T> {
  let step = gen.next();
  while (!step.done) step = gen.next(await exec(step.value));
  return step.value;
}

/** The job_events row of a job at its (new) revision. */
function eventRow(job: Job, at: number, recorded: boolean): NewJobEventRow {
  return {
    job_id: job.jobId,
    revision: job.revision,
    at,
    status: job.status,
    progress: job.progress,
    phase: job.phase,
    detail: job.detail,
    cancel_requested: job.cancelRequested ? 1 : 0,
    error: job.error,
    recorded: recorded ? 1 : 0,
    snapshot: jobToSnapshot(job),
  };
}

/** The unique key that allows one PENDING/RUNNING job per (operation_type, resource). */
function activeKeyOf(operationType: string, resource: string): string {
  return createHash("sha256").update(`${operationType}\u0000${resource}`).digest("hex");
}

/**
 * Throws the FailedPreconditionError of an illegal transition: `what` has a %s where the current
 * status goes (in upper case); `advice` says what to do, unless the job has finished anyway.
 */
function refuse(job: Job, what: string, advice?: string): never {
  const hint = isTerminal(job.status) || advice === undefined ? "the job has already finished" : advice;
  throw new FailedPreconditionError(
    `cannot ${what.replace("%s", job.status.toUpperCase())}; ${hint}`,
    "STATUS",
    job.jobId,
  );
}

/**
 * The advice of a refused MarkCancelled. It goes to the worker, which (role service) cannot call
 * CancelJob itself, so it names who can instead of telling it to.
 */
function noCancelRequested(what: "job" | "RUNNING job"): string {
  return `no cancellation was requested: only a ${what} whose cancellation was requested (CancelJob by its owner or an admin) can be marked cancelled`;
}

function errorCode(error: unknown): { code?: unknown; errno?: unknown } {
  return typeof error === "object" && error !== null ? (error as { code?: unknown; errno?: unknown }) : {};
}

/** A unique (or primary) key violation on either dialect. */
function isUniqueViolation(error: unknown): boolean {
  const { code, errno } = errorCode(error);
  return (
    code === "SQLITE_CONSTRAINT_UNIQUE" ||
    code === "SQLITE_CONSTRAINT_PRIMARYKEY" ||
    code === "ER_DUP_ENTRY" ||
    errno === 1062
  );
}

/** Errors after which running the same transaction again can succeed. */
function isTransient(error: unknown): boolean {
  const { code, errno } = errorCode(error);
  return (
    (typeof code === "string" && code.startsWith("SQLITE_BUSY")) ||
    code === "ER_LOCK_DEADLOCK" ||
    errno === 1213 ||
    code === "ER_LOCK_WAIT_TIMEOUT" ||
    errno === 1205
  );
}

function* chunks<T>(items: T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

// Job queries: create, read, list, history, and the conditional update that applies a lifecycle rule.
// Over 350 lines on purpose: the per-job write queue, its batch transaction and the reads it depends on
// (causal on Galera) keep their locking and retry rules in one place; other concerns have their own files.
import { createHash, randomUUID } from "node:crypto";
import { CompiledQuery } from "kysely";
import { AbortedError, AlreadyExistsError, jobNotFound } from "../errors.js";
import { applyCounts, moved } from "./counts.js";
import type { JobRow, JobRowUpdate, NewJobEventRow, NewJobRow } from "./database.js";
import { sameState } from "./job.js";
import type { Job, JobEvent, JobStatus } from "./job.js";
import type { Rule } from "./lifecycle.js";
import { eventRowToJobEvent, jobRowToJob, jobToSnapshot } from "./rows.js";
import type { HistoryPage, ListJobsQuery, NewJob } from "./store.js";
import { isUniqueViolation } from "./transaction.js";
import type { StoreDb } from "./transaction.js";

/** getHistory's page size when none is given. */
const DEFAULT_HISTORY_LIMIT = 10_000;
/** Attempts of a batch whose conditional update found the row changed (it cannot, with the row locked). */
export const MAX_TRANSITION_ATTEMPTS = 5;
/** Transitions of one job applied in one transaction at most. */
const MAX_BATCH = 200;
/** Attempts of an insert whose active job finished in between (each retry inserts again). */
const MAX_CREATE_ATTEMPTS = 5;

/** A new PENDING job; see JobStore.createJob. */
export async function createJob(db: StoreDb, input: NewJob): Promise<Job> {
  const requestId = input.requestId ?? null;
  if (requestId !== null) {
    const existing = await jobByRequestId(db, requestId);
    if (existing) return existing;
  }
  const resource = input.resource ?? null;
  const activeKey = resource === null ? null : activeKeyOf(input.operationType, resource);
  const k = db.kysely;
  for (let attempt = 1; attempt <= MAX_CREATE_ATTEMPTS; attempt++) {
    const now = db.now();
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
      rate_anchor_at: null,
      rate_anchor_progress: null,
    };
    const job = jobRowToJob(row as JobRow);
    try {
      await db.write(function* () {
        yield k.insertInto("jobs").values(row).compile();
        yield insertEvents(db, [eventRow(job, now, true, true)]);
        yield applyCounts(db.dialect, moved(job, null, job.status))!;
      });
      return job;
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
    }
    // A unique key said no: a retry of the same request, or an active job on the same resource.
    if (requestId !== null) {
      const existing = await jobByRequestId(db, requestId);
      if (existing) return existing;
    }
    if (activeKey !== null) {
      const active = await k.selectFrom("jobs").selectAll().where("active_key", "=", activeKey).executeTakeFirst();
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
  throw new AbortedError(`could not create the job: the database kept reporting a conflict; try again`);
}

/**
 * The job, or undefined when there is no such job or (with `visibleTo`) it belongs to another user. The
 * owner is part of the query, so another user's job is decided on the primary key and username alone:
 * its large columns (result, error) are neither sent by the database nor decoded here, and it answers
 * as fast as a missing id. On Galera the read is causal (wsrep_sync_wait), so a job created or
 * changed through another node a moment ago is seen as that node committed it.
 */
export async function getJob(db: StoreDb, jobId: string, visibleTo?: string): Promise<Job | undefined> {
  // The hot read (GetJobDetails): SQL written once, no query builder per call.
  const hot = CompiledQuery.raw(
    jobByIdSql(db, visibleTo !== undefined),
    visibleTo === undefined ? [jobId] : [jobId, visibleTo],
  );
  // On Galera every read of a job is causal: a client that changed it through another node a moment ago
  // must not read the revision before its own write (read-your-writes across replicas); elsewhere the
  // hot read is already causal.
  if (await db.causal.isGalera()) {
    const row = await causalJobRow(db, jobId, visibleTo);
    return row ? jobRowToJob(row) : undefined;
  }
  const row = (await db.query(hot)).rows[0] as JobRow | undefined;
  return row ? jobRowToJob(row) : undefined;
}

/** True when the job exists and (with `visibleTo`) belongs to that user; reads no large column. */
export async function jobExists(db: StoreDb, jobId: string, visibleTo?: string): Promise<boolean> {
  const query = db.kysely
    .selectFrom("jobs")
    .select("job_id")
    .where("job_id", "=", jobId)
    .$if(visibleTo !== undefined, (q) => q.where("username", "=", visibleTo as string));
  if ((await query.executeTakeFirst()) !== undefined) return true;
  // Like getJob: one created through another Galera node a moment ago is looked for causally.
  if (!(await db.causal.isGalera())) return false;
  return (await db.causal.select(query)).length > 0;
}

/** One page of jobs, newest first; see ListJobsQuery. */
export async function listJobs(db: StoreDb, query: ListJobsQuery): Promise<Job[]> {
  const statuses = query.statuses ?? [];
  if (statuses.length <= 1) {
    const rows = await listQuery(db, query, statuses[0]).execute();
    return rows.map(jobRowToJob);
  }
  // Several statuses: a page of each from its own index range, merged, in one snapshot. As one query
  // (status IN (...) ORDER BY created_at) both databases read every job of those statuses and sort them:
  // 0.7 s for FAILED + CANCELLED at a million jobs on SQLite.
  const pages = await db.read(function* () {
    const out: JobRow[] = [];
    for (const status of new Set(statuses))
      out.push(...((yield listQuery(db, query, status).compile()).rows as JobRow[]));
    return out;
  });
  pages.sort(
    (a, b) => Number(b.created_at) - Number(a.created_at) || (a.job_id < b.job_id ? 1 : a.job_id > b.job_id ? -1 : 0),
  );
  return pages.slice(0, query.limit).map(jobRowToJob);
}

/** The page query of ListJobs for one status (undefined: any status), newest first, keyset on (created_at, job_id). */
function listQuery(db: StoreDb, query: ListJobsQuery, status: JobStatus | undefined) {
  let q = db.kysely.selectFrom("jobs").selectAll();
  if (query.username !== undefined) q = q.where("username", "=", query.username);
  if (status !== undefined) q = q.where("status", "=", status);
  if (query.operationType !== undefined) q = q.where("operation_type", "=", query.operationType);
  if (query.resource !== undefined) q = q.where("resource", "=", query.resource);
  if (query.createdAfter !== undefined) q = q.where("created_at", ">=", query.createdAfter);
  if (query.createdBefore !== undefined) q = q.where("created_at", "<", query.createdBefore);
  const after = query.after;
  if (after !== undefined) {
    // (created_at, job_id) < (a.createdAt, a.jobId), spelled so the leading range uses the index on both dialects.
    q = q
      .where("created_at", "<=", after.createdAt)
      .where((eb) => eb.or([eb("created_at", "<", after.createdAt), eb("job_id", "<", after.jobId)]));
  }
  return q.orderBy("created_at", "desc").orderBy("job_id", "desc").limit(query.limit);
}

/** The recorded changes of a job after revision `afterRevision`, oldest first, at most `limit`. */
export async function getHistory(db: StoreDb, jobId: string, page: HistoryPage = {}): Promise<JobEvent[]> {
  const rows = await db.kysely
    .selectFrom("job_events")
    .select(["revision", "at", "status", "progress", "phase", "detail", "cancel_requested", "error"])
    .where("job_id", "=", jobId)
    .where("revision", ">", page.afterRevision ?? 0)
    .where("recorded", "=", 1)
    .orderBy("revision")
    .limit(page.limit ?? DEFAULT_HISTORY_LIMIT)
    .execute();
  return rows.map(eventRowToJobEvent);
}

/** transition() for a caller-named job: unknown ids are NotFoundError, and the job is returned. */
export async function mustTransition(db: StoreDb, jobId: string, rule: Rule): Promise<Job> {
  const outcome = await transition(db, jobId, rule);
  if (!outcome) throw jobNotFound(jobId);
  return outcome.job;
}

/** What a transition did: the job after it, and whether it changed (false: the rule had nothing to do). */
export interface Outcome {
  job: Job;
  changed: boolean;
}

/** A transition waiting for its job's next batch. */
interface Waiting {
  rule: Rule;
  resolve(outcome: Outcome | undefined): void;
  reject(error: unknown): void;
}

/** Per store: the transitions waiting, by job; a job has an entry while a batch of it runs. */
const waiting = new WeakMap<StoreDb, Map<string, Waiting[]>>();

/**
 * Applies `rule` to the job as stored: it checks the status (throwing FailedPreconditionError) and names
 * the change (null: nothing to do); the change, a job_events row and the job_counts change are written
 * in one transaction. undefined when the job does not exist.
 *
 * Transitions of one job are applied in the order they arrive, each to the result of the one before,
 * and those that arrive while one is being written go together in the next transaction (one row lock,
 * one commit and fsync for all of them; each still its own revision and event). Other processes are
 * kept out by the lock on the row (SELECT ... FOR UPDATE on MySQL, the write lock on SQLite), so no
 * writer retries blind: 100 writers of one job on MySQL made 78 changes/s by colliding.
 */
export function transition(db: StoreDb, jobId: string, rule: Rule): Promise<Outcome | undefined> {
  let byJob = waiting.get(db);
  if (byJob === undefined) {
    byJob = new Map();
    waiting.set(db, byJob);
  }
  const jobs = byJob;
  return new Promise((resolve, reject) => {
    const queue = jobs.get(jobId);
    if (queue !== undefined) {
      queue.push({ rule, resolve, reject });
      return;
    }
    const fresh: Waiting[] = [{ rule, resolve, reject }];
    jobs.set(jobId, fresh);
    void drain(db, jobId, fresh).finally(() => jobs.delete(jobId));
  });
}

/** Writes the job's waiting transitions batch by batch until none is left. */
async function drain(db: StoreDb, jobId: string, queue: Waiting[]): Promise<void> {
  while (queue.length > 0) {
    const batch = queue.splice(0, MAX_BATCH);
    try {
      const results = await applyBatch(
        db,
        jobId,
        batch.map((w) => w.rule),
      );
      for (const [i, w] of batch.entries()) {
        const result = results[i]!;
        if ("error" in result) w.reject(result.error);
        else w.resolve(result.outcome);
      }
    } catch (error) {
      for (const w of batch) w.reject(error);
    }
  }
}

type BatchResult = { outcome: Outcome | undefined } | { error: unknown };

/** One transaction: lock and read the job, apply each rule in turn, write the row once, the events and counts. */
async function applyBatch(db: StoreDb, jobId: string, rules: Rule[]): Promise<BatchResult[]> {
  // On Galera the locking read is made causal too: a node may not have applied a write that another node
  // committed a moment ago, and refusing a transition on a stale row would be wrong (see causal-read.ts).
  const galera = await db.causal.isGalera();
  const sql = db.dialect === "mysql" ? `${jobByIdSql(db)} for update` : jobByIdSql(db);
  const select = CompiledQuery.raw(galera ? `SET STATEMENT wsrep_sync_wait=1 FOR ${sql}` : sql, [jobId]);
  const q = db.dialect === "mysql" ? "`" : '"';
  // Inside the transaction (after BEGIN) the wait above does not happen: the node must have applied what
  // the cluster committed before the transaction starts, so a causal read outside it comes first. The
  // locking read then sees the newest committed row.
  const sync = CompiledQuery.raw(`SET STATEMENT wsrep_sync_wait=1 FOR SELECT 1 FROM ${q}jobs${q} WHERE job_id = ?`, [
    jobId,
  ]);
  for (let attempt = 1; ; attempt++) {
    if (galera) await db.query(sync);
    const results = await db.write(function* () {
      const first = (yield select).rows[0] as JobRow | undefined;
      if (first === undefined) return rules.map((): BatchResult => ({ outcome: undefined }));
      let row = first;
      let job = jobRowToJob(row);
      const set: JobRowUpdate = {};
      const events: NewJobEventRow[] = [];
      const out: BatchResult[] = [];
      for (const rule of rules) {
        try {
          const now = db.now();
          const change = rule(job, row, now);
          if (change === null) {
            out.push({ outcome: { job, changed: false } });
            continue;
          }
          const step: JobRowUpdate = { ...change.set, revision: job.revision + 1, updated_at: now };
          Object.assign(set, step);
          const before = job;
          row = { ...row, ...step } as JobRow;
          job = jobRowToJob(row);
          events.push(eventRow(job, now, change.recorded, !sameState(before, job)));
          out.push({ outcome: { job, changed: true } });
        } catch (error) {
          out.push({ error });
        }
      }
      if (events.length === 0) return out;
      const r = yield updateJob(db, jobId, Number(first.revision), set);
      if (Number(r.numAffectedRows ?? 0) !== 1) return undefined;
      yield insertEvents(db, events);
      const counts = applyCounts(db.dialect, moved(job, first.status, row.status));
      if (counts) yield counts;
      return out;
    });
    // Anything but the results (undefined: the row had changed under the check) is a lost race: again.
    if (results) return results;
    if (attempt >= MAX_TRANSITION_ATTEMPTS) {
      throw new AbortedError(`job ${jobId} is being changed by too many writers at once; try again`);
    }
  }
}

/** UPDATE jobs SET <set> WHERE job_id = ? AND revision = ?, written without the query builder (hot path). */
function updateJob(db: StoreDb, jobId: string, revision: number, set: JobRowUpdate): CompiledQuery {
  const q = quoteOf(db);
  const columns = Object.keys(set) as (keyof JobRowUpdate)[];
  return CompiledQuery.raw(
    `update ${q}jobs${q} set ${columns.map((c) => `${q}${c}${q} = ?`).join(", ")} where ${q}job_id${q} = ? and ${q}revision${q} = ?`,
    [...columns.map((c) => set[c] ?? null), jobId, revision],
  );
}

/** SELECT * of one job by id (and owner), quoted as Kysely quotes it (so it reads the same in a query log). */
function jobByIdSql(db: StoreDb, owned = false): string {
  const q = quoteOf(db);
  const owner = owned ? ` and ${q}username${q} = ?` : "";
  return `select * from ${q}jobs${q} where ${q}job_id${q} = ?${owner}`;
}

/** How the dialect quotes an identifier (`at` is a keyword on MySQL: every column is quoted). */
function quoteOf(db: StoreDb): string {
  return db.dialect === "mysql" ? "`" : '"';
}

/** The columns of a job_events row, in the order insertEvents binds them. */
const EVENT_COLUMNS = [
  "job_id",
  "revision",
  "at",
  "status",
  "progress",
  "phase",
  "detail",
  "cancel_requested",
  "error",
  "recorded",
  "snapshot",
  "transition_revision",
] as const;

/** One multi-row INSERT of job_events rows (hot path: no query builder). */
function insertEvents(db: StoreDb, events: NewJobEventRow[]): CompiledQuery {
  const q = quoteOf(db);
  const row = `(${EVENT_COLUMNS.map(() => "?").join(", ")})`;
  return CompiledQuery.raw(
    `insert into ${q}job_events${q} (${EVENT_COLUMNS.map((c) => q + c + q).join(", ")}) values ${events.map(() => row).join(", ")}`,
    events.flatMap((e) => EVENT_COLUMNS.map((c) => e[c] ?? null)),
  );
}

/** jobRow read causally (see causal-read.ts); undefined off Galera, where jobRow already said all. */
async function causalJobRow(db: StoreDb, jobId: string, visibleTo?: string): Promise<JobRow | undefined> {
  if (!(await db.causal.isGalera())) return undefined;
  const [row] = await db.causal.select(jobQuery(db, jobId, visibleTo));
  return row;
}

function jobQuery(db: StoreDb, jobId: string, visibleTo: string | undefined) {
  return db.kysely
    .selectFrom("jobs")
    .selectAll()
    .where("job_id", "=", jobId)
    .$if(visibleTo !== undefined, (q) => q.where("username", "=", visibleTo as string));
}

async function jobByRequestId(db: StoreDb, requestId: string): Promise<Job | undefined> {
  const row = await db.kysely.selectFrom("jobs").selectAll().where("request_id", "=", requestId).executeTakeFirst();
  return row ? jobRowToJob(row) : undefined;
}

/** The job_events row of a job at its (new) revision; `transition` when its state differs from the one before. */
function eventRow(job: Job, at: number, recorded: boolean, transition: boolean): NewJobEventRow {
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
    // A transition is always history too, so pruneFeed (which removes unrecorded rows) never takes one.
    recorded: recorded || transition ? 1 : 0,
    snapshot: jobToSnapshot(job),
    transition_revision: transition ? job.revision : null,
  };
}

/** The unique key that allows one PENDING/RUNNING job per (operation_type, resource). */
function activeKeyOf(operationType: string, resource: string): string {
  return createHash("sha256").update(`${operationType}\u0000${resource}`).digest("hex");
}

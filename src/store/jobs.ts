// Job queries: create, read, list, history, and the conditional update that applies a lifecycle rule.
import { createHash, randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { AbortedError, AlreadyExistsError, FailedPreconditionError, jobNotFound } from "../errors.js";
import type { JobRow, JobRowUpdate, NewJobEventRow, NewJobRow } from "./database.js";
import type { Job, JobEvent } from "./job.js";
import type { Rule } from "./lifecycle.js";
import { eventRowToJobEvent, jobRowToJob, jobToSnapshot } from "./rows.js";
import type { HistoryPage, ListJobsQuery, NewJob } from "./store.js";
import { isConnectionFault, isUniqueViolation, jitteredBackoff } from "./transaction.js";
import type { StoreDb } from "./transaction.js";

/** getHistory's page size when none is given. */
const DEFAULT_HISTORY_LIMIT = 10_000;
/** Attempts of a conditional update before giving up (each retry re-reads the row). */
export const MAX_TRANSITION_ATTEMPTS = 100;
/**
 * Backoff between those attempts after the first retry: 50 writers on one job (each round one wins)
 * spread out within a few hundred ms, and a call that loses every time gives up within about 2 s.
 */
const TRANSITION_BACKOFF = { baseMs: 1, capMs: 32 } as const;
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
    };
    const job = jobRowToJob(row as JobRow);
    try {
      await db.write(function* () {
        yield k.insertInto("jobs").values(row).compile();
        yield k
          .insertInto("job_events")
          .values(eventRow(job, now, true, true))
          .compile();
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
 * as fast as a missing id. A job this node does not have yet may have been created through another
 * Galera node a moment ago (a client creates it there and asks here): before saying it does not exist,
 * the read is repeated causally.
 */
export async function getJob(db: StoreDb, jobId: string, visibleTo?: string): Promise<Job | undefined> {
  const row = (await jobRow(db, jobId, visibleTo)) ?? (await causalJobRow(db, jobId, visibleTo));
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
  let q = db.kysely.selectFrom("jobs").selectAll();
  if (query.username !== undefined) q = q.where("username", "=", query.username);
  if (query.statuses !== undefined && query.statuses.length > 0) q = q.where("status", "in", [...query.statuses]);
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
  const rows = await q.orderBy("created_at", "desc").orderBy("job_id", "desc").limit(query.limit).execute();
  return rows.map(jobRowToJob);
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

/**
 * Reads the job, lets `rule` check the status (it throws FailedPreconditionError) and name the
 * change (null: nothing to do), then applies it with `UPDATE ... WHERE revision = <read revision>`
 * and the job_events row in one transaction. When another writer got there first the update
 * matches no row and we start over from the read. undefined when the job does not exist.
 */
export async function transition(
  db: StoreDb,
  jobId: string,
  rule: Rule,
): Promise<{ job: Job; changed: boolean } | undefined> {
  const k = db.kysely;
  // Read causally once the plain read (cheap, usually current) led to a refusal or a lost update: on
  // Galera it may predate a write committed through another node that the caller already saw.
  let causal = false;
  for (let attempt = 1; ; attempt++) {
    // A read changes nothing: one broken connection under it is retried here, so the transition
    // (which the guard may not repeat as a whole) does not fail for it.
    const read = () => (causal ? causalJobRow(db, jobId) : jobRow(db, jobId));
    const row = await read().catch((error: unknown) => {
      if (isConnectionFault(error)) return read();
      throw error;
    });
    if (!row) {
      if (causal || !(await db.causal.isGalera())) return undefined;
      causal = true;
      continue;
    }
    const job = jobRowToJob(row);
    const now = db.now();
    let change: ReturnType<Rule>;
    try {
      change = rule(job, row, now);
    } catch (error) {
      if (causal || !(error instanceof FailedPreconditionError) || !(await db.causal.isGalera())) throw error;
      causal = true;
      continue;
    }
    if (change === null) return { job, changed: false };
    const set: JobRowUpdate = { ...change.set, revision: job.revision + 1, updated_at: now };
    const next = jobRowToJob({ ...row, ...set } as JobRow);
    const applied = await db.write(function* () {
      const r = yield k
        .updateTable("jobs")
        .set(set)
        .where("job_id", "=", jobId)
        .where("revision", "=", job.revision)
        .compile();
      if (Number(r.numAffectedRows ?? 0) !== 1) return false;
      yield k
        .insertInto("job_events")
        .values(eventRow(next, now, change.recorded, !sameState(job, next)))
        .compile();
      return true;
    });
    if (applied) return { job: next, changed: true };
    causal = await db.causal.isGalera();
    if (attempt >= MAX_TRANSITION_ATTEMPTS) {
      throw new AbortedError(`job ${jobId} is being changed by too many writers at once; try again`);
    }
    // Another writer just moved the job: re-read at once, then back off with jitter, so writers that
    // keep colliding spread out instead of retrying in lockstep.
    if (attempt > 1) await sleep(jitteredBackoff(attempt - 1, TRANSITION_BACKOFF));
  }
}

/** The job's row; with `visibleTo`, only if that user owns it. */
async function jobRow(db: StoreDb, jobId: string, visibleTo?: string): Promise<JobRow | undefined> {
  return jobQuery(db, jobId, visibleTo).executeTakeFirst();
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

/** True when going from `a` to `b` is no transition a watcher must see: same status, same cancel flag. */
export function sameState(a: Job, b: Job): boolean {
  return a.status === b.status && a.cancelRequested === b.cancelRequested;
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

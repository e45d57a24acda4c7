// Job queries: create, read, list, history, and the conditional update that applies a lifecycle rule.
// Over 350 lines on purpose: the per-job write queue, its batch transaction and the reads it depends on
// (causal on Galera) keep their locking and retry rules in one place; other concerns have their own files.
import { createHash, randomUUID } from "node:crypto";
import { CompiledQuery } from "kysely";
import { AbortedError, AlreadyExistsError, jobNotFound } from "../errors.js";
import type { CountDelta } from "./counts.js";
import { applyCounts, moved } from "./counts.js";
import type { JobRow, JobRowUpdate, NewJobEventRow, NewJobRow } from "./database.js";
import type { Finished } from "./duration-histogram.js";
import { applyHistogram, finishedOf } from "./duration-histogram.js";
import type { Job, JobEvent, JobStatus } from "./job.js";
import { isTerminal, sameState } from "./job.js";
import type { Rule } from "./lifecycle.js";
import { batchedJob } from "./read-batch.js";
import { eventRowToJobEvent, jobRowToJob, jobToSnapshot } from "./rows.js";
import { IDENTIFIER_QUOTE } from "./sql-names.js";
import type { HistoryPage, ListJobsQuery, NewJob } from "./store.js";
import type { StoreDb } from "./transaction.js";
import { isUniqueViolation } from "./transaction.js";
import { outboxInsert } from "./webhooks.js";

/** getHistory's page size when none is given. */
const DEFAULT_HISTORY_LIMIT = 10_000;
/** Attempts of a batch whose conditional update found the row changed (it cannot, with the row locked). */
export const MAX_TRANSITION_ATTEMPTS = 5;
/** Transitions of one job applied in one transaction at most. */
const MAX_BATCH = 200;
/** Jobs whose transitions are written in one transaction at most (see transition). */
const MAX_GROUP_JOBS = 100;
/** Groups of transitions written at once (on disjoint jobs, each on its own connection on MySQL). */
const MAX_GROUPS = 4;
/** Rows of one INSERT of job_events (12 parameters each: well under either database's limit). */
const MAX_EVENTS_PER_INSERT = 500;
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
      trace_context: input.traceContext ?? null,
    };
    const job = jobRowToJob(row as JobRow);
    try {
      await db.write(function* () {
        yield k.insertInto("jobs").values(row).compile();
        yield applyCounts(db.dialect, moved(job, null, job.status))!;
        yield outboxInsert(db, job, now);
        // The event last, as in applyGroup: its seq is taken just before the commit.
        yield insertEvents(db, [eventRow(job, now, true, true)]);
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
export function getJob(db: StoreDb, jobId: string, visibleTo?: string): Promise<Job | undefined> {
  // The hot read (GetJobDetails): read with the other reads of this turn, SQL written once (read-batch.ts);
  // straight there, without an await, once the database is known not to be Galera.
  if (db.causal.knownGalera() === false) return batchedJob(db, jobId, visibleTo);
  return galeraAwareJob(db, jobId, visibleTo);
}

/** getJob before Galera is ruled out, and on Galera. */
async function galeraAwareJob(db: StoreDb, jobId: string, visibleTo?: string): Promise<Job | undefined> {
  // On Galera every read of a job is causal: a client that changed it through another node a moment ago
  // must not read the revision before its own write (read-your-writes across replicas); elsewhere the
  // hot read is already causal.
  if (await db.causal.isGalera()) {
    const row = await causalJobRow(db, jobId, visibleTo);
    return row ? jobRowToJob(row) : undefined;
  }
  return batchedJob(db, jobId, visibleTo);
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

/** Per store: the transitions waiting, by job, and the groups being written. */
interface Writer {
  /** Transitions not yet in a group, by job, in the order they arrived. */
  readonly waiting: Map<string, Waiting[]>;
  /** Jobs of the groups being written: their next transitions wait for a later group. */
  readonly writing: Set<string>;
  /** Groups being written. */
  groups: number;
  /** A start of groups is scheduled (setImmediate). */
  scheduled: boolean;
}

const writers = new WeakMap<StoreDb, Writer>();

/**
 * Applies `rule` to the job as stored: it checks the status (throwing FailedPreconditionError) and names
 * the change (null: nothing to do); the change, a job_events row and the job_counts change are written
 * in one transaction. undefined when the job does not exist.
 *
 * Transitions of one job are applied in the order they arrive, each to the result of the one before.
 * Transitions that arrive while earlier ones are being written go together into the next group: one
 * transaction for up to MAX_GROUP_JOBS jobs (each with up to MAX_BATCH transitions, each still its own
 * revision and event), with one read of all their rows, one insert of their events and one update of
 * the counters, so a hundred workers reporting at once cost a few round trips and one commit instead
 * of five round trips and a commit each. Other processes are kept out by the locks on the rows
 * (SELECT ... FOR UPDATE in job_id order on MySQL, the write lock on SQLite), so no writer retries
 * blind: 100 writers of one job on MySQL made 78 changes/s by colliding. Up to MAX_GROUPS groups are
 * written at once, on disjoint jobs.
 */
export function transition(db: StoreDb, jobId: string, rule: Rule): Promise<Outcome | undefined> {
  let writer = writers.get(db);
  if (writer === undefined) {
    writer = { waiting: new Map(), writing: new Set(), groups: 0, scheduled: false };
    writers.set(db, writer);
  }
  const w = writer;
  return new Promise((resolve, reject) => {
    const queue = w.waiting.get(jobId);
    if (queue !== undefined) queue.push({ rule, resolve, reject });
    else w.waiting.set(jobId, [{ rule, resolve, reject }]);
    schedule(db, w);
  });
}

/** Starts groups on the next turn of the event loop, so that the transitions of this turn go together. */
function schedule(db: StoreDb, w: Writer): void {
  if (w.scheduled || w.groups >= MAX_GROUPS) return;
  w.scheduled = true;
  setImmediate(() => {
    w.scheduled = false;
    startGroups(db, w);
  });
}

/** Starts groups of the waiting transitions of jobs not being written, up to MAX_GROUPS at once. */
function startGroups(db: StoreDb, w: Writer): void {
  while (w.groups < MAX_GROUPS) {
    const group = new Map<string, Waiting[]>();
    for (const [jobId, queue] of w.waiting) {
      if (w.writing.has(jobId)) continue;
      group.set(jobId, queue.splice(0, MAX_BATCH));
      if (queue.length === 0) w.waiting.delete(jobId);
      if (group.size >= MAX_GROUP_JOBS) break;
    }
    if (group.size === 0) return;
    for (const jobId of group.keys()) w.writing.add(jobId);
    w.groups++;
    void writeGroup(db, group).finally(() => {
      for (const jobId of group.keys()) w.writing.delete(jobId);
      w.groups--;
      if (w.waiting.size > 0) schedule(db, w);
    });
  }
}

/** Writes one group and settles each of its transitions. */
async function writeGroup(db: StoreDb, group: Map<string, Waiting[]>): Promise<void> {
  try {
    const rules = new Map([...group].map(([jobId, waiting]) => [jobId, waiting.map((w) => w.rule)]));
    const results = await applyGroup(db, rules);
    for (const [jobId, waiting] of group) {
      const jobResults = results.get(jobId)!;
      for (const [i, w] of waiting.entries()) {
        const result = jobResults[i]!;
        if ("error" in result) w.reject(result.error);
        else w.resolve(result.outcome);
      }
    }
  } catch (error) {
    for (const waiting of group.values()) for (const w of waiting) w.reject(error);
  }
}

type BatchResult = { outcome: Outcome | undefined } | { error: unknown };

/**
 * One transaction: lock and read the group's jobs, apply each job's rules in turn, write each changed row
 * once, then all their events and the counters. A row found changed under the lock (it cannot be) runs
 * the whole group again.
 */
async function applyGroup(db: StoreDb, rulesByJob: Map<string, Rule[]>): Promise<Map<string, BatchResult[]>> {
  const ids = [...rulesByJob.keys()].sort();
  // On Galera the locking read is made causal too: a node may not have applied a write that another node
  // committed a moment ago, and refusing a transition on a stale row would be wrong (see causal-read.ts).
  const galera = db.causal.knownGalera() ?? (await db.causal.isGalera());
  const q = IDENTIFIER_QUOTE[db.dialect];
  const inList = ids.map(() => "?").join(", ");
  // MySQL: one locking read of every row, in job_id order (two groups lock shared rows in the same order).
  // SQLite: the write lock is the lock, and a read per job reuses one prepared statement.
  const select =
    db.dialect === "mysql"
      ? CompiledQuery.raw(
          `${galera ? "SET STATEMENT wsrep_sync_wait=1 FOR " : ""}select * from ${q}jobs${q} where ${q}job_id${q} in (${inList}) order by ${q}job_id${q} for update`,
          ids,
        )
      : undefined;
  // Inside the transaction (after BEGIN) the wait above does not happen: the node must have applied what
  // the cluster committed before the transaction starts, so a causal read outside it comes first. The
  // locking read then sees the newest committed row.
  const sync = CompiledQuery.raw(
    `SET STATEMENT wsrep_sync_wait=1 FOR SELECT 1 FROM ${q}jobs${q} WHERE job_id IN (${inList})`,
    ids,
  );
  for (let attempt = 1; ; attempt++) {
    if (galera) await db.query(sync);
    const results = await db.write(function* () {
      const rows = new Map<string, JobRow>();
      if (select !== undefined) {
        for (const row of (yield select).rows as JobRow[]) rows.set(row.job_id, row);
      } else {
        for (const id of ids) {
          const row = (yield CompiledQuery.raw(jobByIdSql(db), [id])).rows[0] as JobRow | undefined;
          if (row !== undefined) rows.set(id, row);
        }
      }
      const out = new Map<string, BatchResult[]>();
      const updates: RowUpdate[] = [];
      const events: NewJobEventRow[] = [];
      const reached: { job: Job; now: number }[] = [];
      const deltas: CountDelta[] = [];
      const finished: Finished[] = [];
      for (const id of ids) {
        const rules = rulesByJob.get(id)!;
        const first = rows.get(id);
        if (first === undefined) {
          out.set(
            id,
            rules.map((): BatchResult => ({ outcome: undefined })),
          );
          continue;
        }
        const applied = applyRules(db, first, rules);
        out.set(id, applied.results);
        if (applied.events.length === 0) continue;
        updates.push({ jobId: id, revision: Number(first.revision), set: applied.set });
        events.push(...applied.events);
        reached.push(...applied.reached);
        deltas.push(...moved(applied.job, first.status, applied.row.status));
        if (isTerminal(applied.job.status) && !isTerminal(first.status as JobStatus)) {
          finished.push(finishedOf(applied.job));
        }
      }
      // SQLite: an UPDATE per job (one prepared statement per set of columns, no round trip); MySQL: one
      // UPDATE for the group (each statement is a round trip, and they were most of a write's time).
      const grouped = db.dialect === "mysql" && updates.length > 1;
      const statements = grouped
        ? [updateJobs(db, updates)]
        : updates.map((u) => updateJob(db, u.jobId, u.revision, u.set));
      for (const statement of statements) {
        const r = yield statement;
        if (Number(r.numAffectedRows ?? 0) !== (grouped ? updates.length : 1)) return undefined;
      }
      const counts = applyCounts(db.dialect, deltas);
      if (counts) yield counts;
      const histogram = applyHistogram(db.dialect, finished, 1);
      if (histogram) yield histogram;
      // The webhook outbox, in the same transaction: a transition commits with its deliveries or not at all.
      for (const r of reached) yield outboxInsert(db, r.job, r.now);
      // The events last: on MySQL an event's seq is taken at its insert and seen by the change feed at the commit,
      // and a row lock waited for after the insert (the job counts, held by a transaction stuck in a Galera commit)
      // kept that seq a hole for seconds, given up by every replica as a rolled-back insert: a change no watcher got
      // (test/store-feed-late-commit.test.ts). Taken last, the seq is a hole only while the commit itself runs.
      for (let i = 0; i < events.length; i += MAX_EVENTS_PER_INSERT) {
        yield insertEvents(db, events.slice(i, i + MAX_EVENTS_PER_INSERT));
      }
      return out;
    });
    // Anything but the results (undefined: a row had changed under the check) is a lost race: again.
    if (results) return results;
    if (attempt >= MAX_TRANSITION_ATTEMPTS) {
      const named =
        ids.length === 1
          ? `job ${ids[0]} is`
          : `jobs ${ids.slice(0, 3).join(", ")}${ids.length > 3 ? ` and ${ids.length - 3} more` : ""} are`;
      throw new AbortedError(`${named} being changed by too many writers at once; try again`);
    }
  }
}

/** Applies one job's rules in turn to its row: the row's update, the events, the job after them, each rule's result. */
function applyRules(db: StoreDb, first: JobRow, rules: Rule[]) {
  let row = first;
  let job = jobRowToJob(row);
  const set: JobRowUpdate = {};
  const events: NewJobEventRow[] = [];
  // The statuses reached, for the webhook outbox.
  const reached: { job: Job; now: number }[] = [];
  const results: BatchResult[] = [];
  for (const rule of rules) {
    try {
      const now = db.now();
      const change = rule(job, row, now);
      if (change === null) {
        results.push({ outcome: { job, changed: false } });
        continue;
      }
      const step: JobRowUpdate = { ...change.set, revision: job.revision + 1, updated_at: now };
      Object.assign(set, step);
      const before = job;
      row = { ...row, ...step } as JobRow;
      job = jobRowToJob(row);
      events.push(eventRow(job, now, change.recorded, !sameState(before, job)));
      if (before.status !== job.status) reached.push({ job, now });
      results.push({ outcome: { job, changed: true } });
    } catch (error) {
      results.push({ error });
    }
  }
  return { set, events, reached, results, job, row };
}

/** A changed job: its revision as read (the update's check) and the columns to write. */
interface RowUpdate {
  jobId: string;
  revision: number;
  set: JobRowUpdate;
}

/**
 * One UPDATE of several jobs, each with its own columns and revision check:
 * SET c = CASE job_id WHEN ? THEN ? ... ELSE c END, ... WHERE job_id IN (...) AND revision = CASE ... END.
 */
function updateJobs(db: StoreDb, updates: RowUpdate[]): CompiledQuery {
  const q = IDENTIFIER_QUOTE[db.dialect];
  const columns = [...new Set(updates.flatMap((u) => Object.keys(u.set) as (keyof JobRowUpdate)[]))];
  const parameters: unknown[] = [];
  const cases = columns.map((c) => {
    const setting = updates.filter((u) => c in u.set);
    for (const u of setting) parameters.push(u.jobId, u.set[c] ?? null);
    return `${q}${c}${q} = case ${q}job_id${q} ${setting.map(() => "when ? then ?").join(" ")} else ${q}${c}${q} end`;
  });
  for (const u of updates) parameters.push(u.jobId);
  for (const u of updates) parameters.push(u.jobId, u.revision);
  const list = updates.map(() => "?").join(", ");
  const revisions = updates.map(() => "when ? then ?").join(" ");
  return CompiledQuery.raw(
    `update ${q}jobs${q} set ${cases.join(", ")} where ${q}job_id${q} in (${list}) and ${q}revision${q} = case ${q}job_id${q} ${revisions} end`,
    parameters,
  );
}

/** UPDATE jobs SET <set> WHERE job_id = ? AND revision = ?, written without the query builder (hot path). */
function updateJob(db: StoreDb, jobId: string, revision: number, set: JobRowUpdate): CompiledQuery {
  const q = IDENTIFIER_QUOTE[db.dialect];
  const columns = Object.keys(set) as (keyof JobRowUpdate)[];
  return CompiledQuery.raw(
    `update ${q}jobs${q} set ${columns.map((c) => `${q}${c}${q} = ?`).join(", ")} where ${q}job_id${q} = ? and ${q}revision${q} = ?`,
    [...columns.map((c) => set[c] ?? null), jobId, revision],
  );
}

/** SELECT * of one job by id, quoted as Kysely quotes it (so it reads the same in a query log). */
function jobByIdSql(db: StoreDb): string {
  const q = IDENTIFIER_QUOTE[db.dialect];
  return `select * from ${q}jobs${q} where ${q}job_id${q} = ?`;
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
  const q = IDENTIFIER_QUOTE[db.dialect];
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

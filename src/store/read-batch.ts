// The job reads of one turn of the event loop go to the database together: on MySQL one prepared query per
// owner, on SQLite one statement per distinct job, and one Job object for every read of the same job.
import type { Statement } from "better-sqlite3";
import type { Pool } from "mysql2";
import type { JobRow } from "./database.js";
import type { Job } from "./job.js";
import { jobRowToJob } from "./rows.js";
import type { StoreDb } from "./transaction.js";

/** Job ids in one MySQL query at most. */
const MAX_IDS_PER_QUERY = 100;
/**
 * The IN list lengths of the MySQL statement: a batch is padded (with its first id again) up to the next
 * one, so each connection prepares a handful of statements, not one per batch size.
 */
const IN_LIST_SIZES = [1, 2, 4, 8, 16, 32, 64, MAX_IDS_PER_QUERY] as const;
/**
 * MySQL read queries of one store in flight at once. Reads asked while they are all out wait for one to
 * come back and go together in the next query: under load a query answers many calls (its round trip,
 * the socket write and the database server's work are shared), and a read still goes out only after it
 * was asked, so it sees every write acknowledged before it.
 */
const MAX_MYSQL_QUERIES_IN_FLIGHT = 2;

interface Read {
  jobId: string;
  resolve(job: Job | undefined): void;
  reject(error: unknown): void;
}

/** Per store: what the batching keeps. */
interface BatchState {
  /** Reads waiting for the next turn (SQLite) or for a query to send them (MySQL), by owner ("" for none). */
  waiting: Map<string, Read[]>;
  /** A flush is scheduled (setImmediate). */
  scheduled: boolean;
  /** MySQL queries out now. */
  inFlight: number;
}

const states = new WeakMap<StoreDb, BatchState>();

/**
 * The job `jobId` (limited to the owner `visibleTo`, when set), read together with the other reads of
 * this turn of the event loop, and every read of the same job in a batch gets the same (never modified)
 * Job object, so what is made of it (the response, its encoding) can be made once.
 *
 * SQLite (readSqlite): one execution of the prepared single-job statement per distinct job.
 * MySQL (readMysql): one prepared `SELECT ... WHERE job_id IN (...)` per owner, at most
 * MAX_MYSQL_QUERIES_IN_FLIGHT at once.
 *
 * The owner stays in each query, so another user's job is still refused on the key and the username
 * alone, its large columns never read. A read is only deferred, never served from a cache: it runs after
 * it was asked for, so it sees every write acknowledged before it was asked for.
 */
export function batchedJob(db: StoreDb, jobId: string, visibleTo: string | undefined): Promise<Job | undefined> {
  let state = states.get(db);
  if (state === undefined) {
    state = { waiting: new Map(), scheduled: false, inFlight: 0 };
    states.set(db, state);
  }
  if (!state.scheduled && (db.open.dialect === "sqlite" || state.inFlight < MAX_MYSQL_QUERIES_IN_FLIGHT)) {
    state.scheduled = true;
    setImmediate(flush, db, state);
  }
  const owner = visibleTo ?? "";
  return new Promise((resolve, reject) => {
    const reads = state.waiting.get(owner);
    const read = { jobId, resolve, reject };
    if (reads === undefined) state.waiting.set(owner, [read]);
    else reads.push(read);
  });
}

/** Sends (MySQL) or answers (SQLite) the reads waiting. */
function flush(db: StoreDb, state: BatchState): void {
  state.scheduled = false;
  const open = db.open;
  if (open.dialect === "sqlite") {
    const turn = state.waiting;
    state.waiting = new Map();
    readSqlite(open.prepare, turn);
    return;
  }
  // One query per owner, as many as may be in flight; the rest wait for one to come back.
  for (const [owner, reads] of state.waiting) {
    if (state.inFlight >= MAX_MYSQL_QUERIES_IN_FLIGHT) return;
    state.waiting.delete(owner);
    state.inFlight++;
    void readMysql(open.pool, owner, reads).finally(() => {
      state.inFlight--;
      if (state.waiting.size > 0 && !state.scheduled) {
        state.scheduled = true;
        setImmediate(flush, db, state);
      }
    });
  }
}

/** The columns of the job read, named (not `*`) so a row's shape does not depend on the migrations' column order. */
const JOB_COLUMNS = [
  "job_id",
  "operation_type",
  "username",
  "resource",
  "status",
  "progress",
  "phase",
  "detail",
  "result",
  "error",
  "cancel_requested",
  "cancel_reason",
  "revision",
  "created_at",
  "updated_at",
  "started_at",
  "completed_at",
  "last_heartbeat_at",
  "rate_anchor_at",
  "rate_anchor_progress",
  "trace_context",
] as const;

const SQLITE_JOB = `select ${JOB_COLUMNS.map((c) => `"${c}"`).join(", ")} from "jobs" where "job_id" = ?`;
const SQLITE_OWNED_JOB = `${SQLITE_JOB} and "username" = ?`;
/**
 * Answers a turn's reads on SQLite: each distinct job read once, through the cached prepared statement.
 */
function readSqlite(prepare: (sql: string) => Statement, turn: Map<string, Read[]>): void {
  for (const [owner, reads] of turn) {
    const jobs = new Map<string, Job | undefined>();
    for (const read of reads) {
      try {
        let job = jobs.get(read.jobId);
        if (job === undefined && !jobs.has(read.jobId)) {
          const row = (
            owner === "" ? prepare(SQLITE_JOB).get(read.jobId) : prepare(SQLITE_OWNED_JOB).get(read.jobId, owner)
          ) as JobRow | undefined;
          job = row === undefined ? undefined : jobRowToJob(row);
          jobs.set(read.jobId, job);
        }
        read.resolve(job);
      } catch (error) {
        read.reject(error);
      }
    }
  }
}

/** The MySQL statement of `size` ids (of `owner`, unless ""): the same text for every batch of that size. */
function mysqlJobsSql(size: number, owned: boolean): string {
  const list = Array.from({ length: size }, () => "?").join(", ");
  return `select ${JOB_COLUMNS.map((c) => `\`${c}\``).join(", ")} from \`jobs\` where \`job_id\` in (${list})${owned ? " and `username` = ?" : ""}`;
}
const MYSQL_SQL = new Map(
  IN_LIST_SIZES.flatMap((n) => [
    [`${n}`, mysqlJobsSql(n, false)],
    [`${n}o`, mysqlJobsSql(n, true)],
  ]),
);

/**
 * Answers `reads` (all limited to `owner`, "" for none) on MySQL: each distinct job once, with mysql2's
 * prepared statements (the binary protocol: nothing escaped on the client, nothing parsed again on the
 * server), padded to IN_LIST_SIZES.
 */
async function readMysql(pool: Pool, owner: string, reads: Read[]): Promise<void> {
  const ids = [...new Set(reads.map((r) => r.jobId))];
  const jobs = new Map<string, Job>();
  const failed = new Map<string, unknown>();
  const chunks: string[][] = [];
  for (let i = 0; i < ids.length; i += MAX_IDS_PER_QUERY) chunks.push(ids.slice(i, i + MAX_IDS_PER_QUERY));
  await Promise.all(
    chunks.map(async (chunk) => {
      try {
        for (const row of await mysqlRows(pool, chunk, owner)) jobs.set(row.job_id, jobRowToJob(row));
      } catch (error) {
        for (const id of chunk) failed.set(id, error);
      }
    }),
  );
  for (const read of reads) {
    if (failed.has(read.jobId)) read.reject(failed.get(read.jobId));
    else read.resolve(jobs.get(read.jobId));
  }
}

/** The rows of the jobs `ids` (at most MAX_IDS_PER_QUERY, of `owner` unless ""). */
function mysqlRows(pool: Pool, ids: string[], owner: string): Promise<JobRow[]> {
  const size = IN_LIST_SIZES.find((n) => n >= ids.length) ?? MAX_IDS_PER_QUERY;
  const params: string[] = ids.slice();
  while (params.length < size) params.push(ids[0]!);
  if (owner !== "") params.push(owner);
  const sql = MYSQL_SQL.get(owner === "" ? `${size}` : `${size}o`)!;
  return new Promise((resolve, reject) => {
    pool.execute(sql, params, (error, rows) => (error ? reject(error) : resolve(rows as JobRow[])));
  });
}

// The job reads of one turn of the event loop go to the database together: on MySQL one prepared query per
// owner, on SQLite one read transaction that reads only the jobs changed since they were last read; one Job
// object for every read of the same (unchanged) job.
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
/** Jobs the SQLite row cache keeps at most (the oldest read is dropped first). */
const MAX_CACHED_JOBS = 10_000;
/** Characters of the cached jobs' text columns at most (a result can be 62 KB): the oldest are dropped first. */
const MAX_CACHED_CHARS = 32 * 1024 * 1024;

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
  /** SQLite: the jobs last read, valid while `stamp` is what the database says. */
  rows: Map<string, { job: Job; chars: number }>;
  chars: number;
  /** SQLite: total_changes() of the connection and data_version when `rows` was last known current. */
  stamp: string;
}

const states = new WeakMap<StoreDb, BatchState>();

/**
 * The job `jobId` (limited to the owner `visibleTo`, when set), read together with the other reads of
 * this turn of the event loop, and every read of the same job in a batch gets the same (never modified)
 * Job object, so what is made of it (the response, its encoding) can be made once.
 *
 * SQLite (readSqlite): the batch is one read transaction, and a job is read from its row only when the
 * database changed since the job was last read; otherwise the Job object read then is handed out again.
 * MySQL (readMysql): one prepared `SELECT ... WHERE job_id IN (...)` per owner, at most
 * MAX_MYSQL_QUERIES_IN_FLIGHT at once.
 *
 * The owner stays in each query, so another user's job is still refused on the key and the username
 * alone, its large columns never read. A read never answers from what was known before it was asked
 * unless the database says nothing changed since, so it sees every write acknowledged before it was asked.
 */
export function batchedJob(db: StoreDb, jobId: string, visibleTo: string | undefined): Promise<Job | undefined> {
  let state = states.get(db);
  if (state === undefined) {
    state = { waiting: new Map(), scheduled: false, inFlight: 0, rows: new Map(), chars: 0, stamp: "" };
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
    readSqlite(open.sqlite, open.prepare, state, turn);
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
 * Whether anything was written since: this connection's row changes, and data_version, which moves when
 * another connection (another process on the file) commits. Either moving drops every cached job.
 */
const SQLITE_STAMP = "select total_changes(), data_version from pragma_data_version()";

/**
 * Answers a turn's reads on SQLite in one deferred read transaction (the WAL read lock, most of a single
 * read's cost, taken once). A job read since the database last changed is answered with the Job object
 * read then (a GetJobDetails poll of an unchanged job reads no row and, with shared-encoding.ts, encodes
 * nothing); the others are read from their rows and kept.
 */
function readSqlite(
  sqlite: import("better-sqlite3").Database,
  prepare: (sql: string) => Statement,
  state: BatchState,
  turn: Map<string, Read[]>,
): void {
  const answers = new Map<Read, Job | undefined>();
  const failed = new Map<Read, unknown>();
  try {
    sqlite
      .transaction(() => {
        const stamp = (prepare(SQLITE_STAMP).raw(true).get() as unknown[]).join(" ");
        if (stamp !== state.stamp) {
          state.rows.clear();
          state.chars = 0;
          state.stamp = stamp;
        }
        for (const [owner, reads] of turn) {
          for (const read of reads) {
            try {
              answers.set(read, cachedOrRead(prepare, state, read.jobId, owner));
            } catch (error) {
              failed.set(read, error);
            }
          }
        }
      })
      .deferred();
  } catch (error) {
    for (const reads of turn.values()) for (const read of reads) read.reject(error);
    return;
  }
  for (const reads of turn.values()) {
    for (const read of reads) {
      if (failed.has(read)) read.reject(failed.get(read));
      else read.resolve(answers.get(read));
    }
  }
}

/** The job from the cache (checked against `owner` as the query would) or from its row, which is then kept. */
function cachedOrRead(
  prepare: (sql: string) => Statement,
  state: BatchState,
  jobId: string,
  owner: string,
): Job | undefined {
  const cached = state.rows.get(jobId);
  if (cached !== undefined) return owner === "" || cached.job.username === owner ? cached.job : undefined;
  const row = (owner === "" ? prepare(SQLITE_JOB).get(jobId) : prepare(SQLITE_OWNED_JOB).get(jobId, owner)) as
    | JobRow
    | undefined;
  if (row === undefined) return undefined;
  const job = jobRowToJob(row);
  const chars =
    200 + (row.result?.length ?? 0) + (row.error?.length ?? 0) + (row.detail?.length ?? 0) + (row.phase?.length ?? 0);
  state.rows.set(jobId, { job, chars });
  state.chars += chars;
  while (state.rows.size > MAX_CACHED_JOBS || state.chars > MAX_CACHED_CHARS) {
    const [oldest, entry] = state.rows.entries().next().value as [string, { chars: number }];
    state.rows.delete(oldest);
    state.chars -= entry.chars;
  }
  return job;
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

// The job reads of one turn of the event loop go to the database together: one query per owner on
// MySQL, one statement per distinct job on SQLite, and one Job object for every read of the same job.
import { CompiledQuery } from "kysely";
import type { JobRow } from "./database.js";
import type { Job } from "./job.js";
import { jobRowToJob } from "./rows.js";
import { IDENTIFIER_QUOTE } from "./sql-names.js";
import type { StoreDb } from "./transaction.js";

/** Job ids in one MySQL query at most. */
const MAX_IDS_PER_QUERY = 100;

interface Read {
  jobId: string;
  resolve(job: Job | undefined): void;
  reject(error: unknown): void;
}

/** Per store: reads waiting for the next turn, by the owner they are limited to ("" for none). */
const waiting = new WeakMap<StoreDb, Map<string, Read[]>>();

/**
 * The job `jobId` (limited to the owner `visibleTo`, when set), read together with the other reads of
 * this turn of the event loop. On the next turn (setImmediate) one `SELECT ... WHERE job_id IN (...)`
 * per owner answers them on MySQL, one execution of the prepared single-job statement per distinct job
 * on SQLite, and every read of the same job gets the same (never modified) Job object, so what is made
 * of it (the response, its encoding) can be made once. A GetJobDetails on MySQL spent most of its time on
 * its own round trip (236 us of the server's CPU per call against 148 us on SQLite, plus 75 us in the
 * database server); clients polling the same jobs now share the reads of a turn.
 *
 * The owner stays in each query, so another user's job is still refused on the key and the username
 * alone, its large columns never read. A read is only deferred, never served from a cache: it runs after
 * it was asked for, so it sees every write acknowledged before it was asked for.
 */
export function batchedJob(db: StoreDb, jobId: string, visibleTo: string | undefined): Promise<Job | undefined> {
  let byOwner = waiting.get(db);
  if (byOwner === undefined) {
    byOwner = new Map();
    waiting.set(db, byOwner);
    setImmediate(() => {
      const turn = waiting.get(db);
      waiting.delete(db);
      if (turn !== undefined) for (const [owner, reads] of turn) void readAll(db, owner, reads);
    });
  }
  const owner = visibleTo ?? "";
  return new Promise((resolve, reject) => {
    const reads = byOwner.get(owner);
    const read = { jobId, resolve, reject };
    if (reads === undefined) byOwner.set(owner, [read]);
    else reads.push(read);
  });
}

/** Answers `reads` (all limited to `owner`, "" for none): each distinct job read once. */
async function readAll(db: StoreDb, owner: string, reads: Read[]): Promise<void> {
  const ids = [...new Set(reads.map((r) => r.jobId))];
  const jobs = new Map<string, Job>();
  const failed = new Map<string, unknown>();
  const chunks =
    db.dialect === "mysql"
      ? Array.from({ length: Math.ceil(ids.length / MAX_IDS_PER_QUERY) }, (_, i) =>
          ids.slice(i * MAX_IDS_PER_QUERY, (i + 1) * MAX_IDS_PER_QUERY),
        )
      : ids.map((id) => [id]);
  await Promise.all(
    chunks.map(async (chunk) => {
      try {
        for (const row of (await db.query(jobsQuery(db, chunk, owner))).rows as JobRow[]) {
          jobs.set(row.job_id, jobRowToJob(row));
        }
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

/**
 * SELECT * of the jobs `ids` (of `owner`, unless ""). One id is the SQL of the single-job read, the same
 * text every time (SQLite keeps it prepared); several are an IN list (MySQL).
 */
function jobsQuery(db: StoreDb, ids: string[], owner: string): CompiledQuery {
  const q = IDENTIFIER_QUOTE[db.dialect];
  const match = ids.length === 1 ? `${q}job_id${q} = ?` : `${q}job_id${q} in (${ids.map(() => "?").join(", ")})`;
  const sql = `select * from ${q}jobs${q} where ${match}${owner === "" ? "" : ` and ${q}username${q} = ?`}`;
  return CompiledQuery.raw(sql, owner === "" ? ids : [...ids, owner]);
}

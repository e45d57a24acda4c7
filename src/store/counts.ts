// job_counts: how many jobs there are per (username, operation_type, status), changed by the same
// transaction as the jobs it counts, so GetJobStatistics reads a few rows instead of counting every job.

import type { Kysely } from "kysely";
import { CompiledQuery, sql } from "kysely";
import type { Dialect } from "./connect.js";
import type { Database } from "./database.js";
import { IDENTIFIER_QUOTE } from "./sql-names.js";

/** A change of job_counts: `delta` more (or fewer) jobs of one user, operation type and status. */
export interface CountDelta {
  username: string;
  operationType: string;
  status: string;
  delta: number;
}

/**
 * The job_counts rows that count every user's jobs are split in this many shards, each named by a
 * username no user can have (a control character and the shard's number): the statistics of every job
 * read a few dozen rows, not every user's (20,000 rows at 1,000 users, 3-14 ms on MySQL), and writers of
 * different jobs rarely meet on one counter (on Galera, two nodes writing one row is a certification
 * conflict that runs one transaction again).
 */
const EVERY_USER_SHARDS = 8;

/** The usernames of the every-user rows. */
export const EVERY_USER_KEYS: readonly string[] = Array.from({ length: EVERY_USER_SHARDS }, (_, i) => `\u0001${i}`);

/** The every-user row of a job: by the last character of its id (a random hex digit of a UUID). */
function everyUserKey(jobId: string): string {
  return EVERY_USER_KEYS[(jobId.charCodeAt(jobId.length - 1) || 0) % EVERY_USER_SHARDS]!;
}

/** A job that moved from status `from` to `to` (null: created, or deleted): its user's and the every-user counters. */
export function moved(
  job: { jobId: string; username: string; operationType: string },
  from: string | null,
  to: string | null,
): CountDelta[] {
  const deltas: CountDelta[] = [];
  for (const username of [job.username, everyUserKey(job.jobId)]) {
    if (from !== null) deltas.push({ username, operationType: job.operationType, status: from, delta: -1 });
    if (to !== null) deltas.push({ username, operationType: job.operationType, status: to, delta: 1 });
  }
  return deltas;
}

/**
 * The one statement that applies `deltas` (merged by key; none when they cancel out). Rows are written in
 * key order, so two transactions touching the same counters lock them in the same order (no deadlock).
 */
export function applyCounts(dialect: Dialect, deltas: readonly CountDelta[]): CompiledQuery | undefined {
  const merged = new Map<string, CountDelta>();
  for (const d of deltas) {
    const key = JSON.stringify([d.username, d.operationType, d.status]);
    const seen = merged.get(key);
    if (seen) seen.delta += d.delta;
    else merged.set(key, { ...d });
  }
  const rows = [...merged.entries()]
    .filter(([, d]) => d.delta !== 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, d]) => d);
  if (rows.length === 0) return undefined;
  const values = rows.map(() => "(?, ?, ?, ?)").join(", ");
  const q = IDENTIFIER_QUOTE[dialect];
  const upsert =
    dialect === "mysql"
      ? "on duplicate key update n = n + values(n)"
      : "on conflict (username, operation_type, status) do update set n = n + excluded.n";
  return CompiledQuery.raw(
    `insert into ${q}job_counts${q} (${q}username${q}, ${q}operation_type${q}, ${q}status${q}, ${q}n${q}) values ${values} ${upsert}`,
    rows.flatMap((d) => [d.username, d.operationType, d.status, d.delta]),
  );
}

/**
 * Writes the every-user rows of job_counts from the jobs table, replacing any (migration 0010; the query
 * bench, which fills jobs behind the store's back). Grouped by the last character of the job id in SQL,
 * mapped to shards here by the same function as every write.
 */
export async function rebuildEveryUserCounts(db: Kysely<Database>, dialect: Dialect): Promise<void> {
  await db
    .deleteFrom("job_counts")
    .where("username", "in", [...EVERY_USER_KEYS])
    .execute();
  const groups = await sql<{ last: string; operation_type: string; status: string; n: number | string }>`
    select substr(job_id, length(job_id)) as last, operation_type, status, count(*) as n
    from jobs group by substr(job_id, length(job_id)), operation_type, status`.execute(db);
  const deltas = groups.rows.map((g) => ({
    username: everyUserKey(g.last),
    operationType: g.operation_type,
    status: g.status,
    delta: Number(g.n),
  }));
  // A few hundred rows per statement, well under either database's parameter limit.
  for (let i = 0; i < deltas.length; i += 500) {
    const statement = applyCounts(dialect, deltas.slice(i, i + 500));
    if (statement) await db.executeQuery(statement);
  }
}

// ListJobs and GetJobStatistics against a large jobs table (default 1,000,000 rows) on SQLite and, when
// JOBWATCH_TEST_MYSQL_URL is set, MySQL: the median time of each documented filter combination and of the
// statistics, through the store (no transport). Used by bench/run.ts; run alone with
// `node --import tsx bench/list-jobs.ts [jobs]`.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { Kysely } from "kysely";
import { sql } from "kysely";
import type { Dialect } from "../src/store/connect.js";
import { openDatabase } from "../src/store/connect.js";
import { rebuildEveryUserCounts } from "../src/store/counts.js";
import type { Database } from "../src/store/database.js";
import { rebuildDurationHistogram } from "../src/store/duration-histogram.js";
import { migrateToLatest } from "../src/store/migrations.js";
import { createStore } from "../src/store/open.js";
import type { JobStore, ListJobsQuery } from "../src/store/store.js";
import { freshDatabase, TEST_MYSQL_URL } from "../test/helpers/databases.js";

const USERS = 1000;
const STATUSES = ["completed", "completed", "completed", "failed", "cancelled", "running", "pending"] as const;
const OPERATIONS = ["add_golden_repo", "refresh_golden_repo", "remove_golden_repo", "add_golden_repo_index"];
const DAY = 86_400_000;
const REPEAT = 20;

/** What queryBench measured, in ms (medians). */
export interface QueryFigures {
  statisticsMs: number;
  statisticsUserMs: number;
  /** Every user's with the per-type durations (include_durations_by_operation_type). */
  statisticsTypedMs: number;
  /** Per filter combination, e.g. "user+status". */
  listMs: Record<string, number>;
}

/** A deterministic pseudo-random sequence (mulberry32), so every run fills the same table. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The rows of the table: users, statuses and operations independent of each other, over 30 days. */
function* jobRows(count: number, now: number): Generator<unknown[]> {
  const next = random(42);
  for (let i = 0; i < count; i++) {
    const status = STATUSES[Math.floor(next() * STATUSES.length)]!;
    const created = now - Math.floor(((count - i) / count) * 30 * DAY);
    const started = status === "pending" ? null : created + 1000;
    const finished = status === "completed" || status === "failed" || status === "cancelled";
    const completed = finished ? created + 1000 + Math.floor(next() * 600) * 1000 : null;
    yield [
      randomUUID(),
      OPERATIONS[Math.floor(next() * OPERATIONS.length)],
      `user${Math.floor(next() * USERS)}`,
      status,
      finished ? 100 : 50,
      created,
      completed ?? created,
      started,
      completed,
    ];
  }
}

const COLUMNS =
  "job_id, operation_type, username, status, progress, cancel_requested, revision, created_at, updated_at, started_at, completed_at";

/** Fills the jobs table of the (migrated) database at `url` with `count` rows, straight through SQL. */
async function fill(url: string, count: number): Promise<void> {
  const open = openDatabase(url);
  const now = Date.now();
  try {
    await migrateToLatest(open);
    if (open.dialect === "sqlite") {
      const insert = open.sqlite.prepare(`INSERT INTO jobs (${COLUMNS}) VALUES (?, ?, ?, ?, ?, 0, 1, ?, ?, ?, ?)`);
      open.sqlite.transaction(() => {
        for (const row of jobRows(count, now)) insert.run(row);
      })();
      await countJobs(open.db, open.dialect);
      return;
    }
    let batch: unknown[][] = [];
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const values = sql.join(
        batch.map((r) => sql`(${r[0]}, ${r[1]}, ${r[2]}, ${r[3]}, ${r[4]}, 0, 1, ${r[5]}, ${r[6]}, ${r[7]}, ${r[8]})`),
      );
      await sql`INSERT INTO jobs (${sql.raw(COLUMNS)}) VALUES ${values}`.execute(open.db);
      batch = [];
    };
    for (const row of jobRows(count, now)) {
      batch.push(row);
      if (batch.length === 2000) await flush();
    }
    await flush();
    await countJobs(open.db, open.dialect);
    // A table filled in one go has the planner statistics InnoDB took while it was small (it refreshes
    // them in the background, later): a table grown by use has current ones, so the bench makes them so.
    await sql`analyze table jobs, job_counts, duration_histogram`.execute(open.db);
  } finally {
    await open.db.destroy();
  }
}

/** job_counts and duration_histogram for the rows written behind the store's back, as migrations 0005 and 0010 make them. */
async function countJobs(db: Kysely<Database>, dialect: Dialect): Promise<void> {
  await sql`delete from job_counts`.execute(db);
  await sql`insert into job_counts (username, operation_type, status, n)
    select username, operation_type, status, count(*) from jobs group by username, operation_type, status`.execute(db);
  await rebuildEveryUserCounts(db, dialect);
  await rebuildDurationHistogram(db, dialect);
}

/** Median ms of REPEAT runs of `query` (after one unmeasured run). */
async function time(query: () => Promise<unknown>): Promise<number> {
  const samples: number[] = [];
  await query();
  for (let i = 0; i < REPEAT; i++) {
    const t = performance.now();
    await query();
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

/** Every combination of ListJobs' documented filters (user, statuses, operation_type, created_after), plus deep pages. */
async function measureLists(store: JobStore): Promise<Record<string, number>> {
  const filters: Record<string, Partial<ListJobsQuery>> = {
    user: { username: "user7" },
    status: { statuses: ["running"] },
    op: { operationType: "refresh_golden_repo" },
    since: { createdAfter: Date.now() - 3_600_000 },
  };
  const names = Object.keys(filters);
  const out: Record<string, number> = {};
  for (let mask = 0; mask < 1 << names.length; mask++) {
    const picked = names.filter((_, i) => mask & (1 << i));
    const query: ListJobsQuery = Object.assign({ limit: 51 }, ...picked.map((n) => filters[n]));
    out[picked.length === 0 ? "no filter" : picked.join("+")] = await time(() => store.listJobs(query));
  }
  out["statuses failed,cancelled"] = await time(() => store.listJobs({ statuses: ["failed", "cancelled"], limit: 51 }));
  out["user+statuses failed,cancelled"] = await time(() =>
    store.listJobs({ username: "user7", statuses: ["failed", "cancelled"], limit: 51 }),
  );
  out["created_before 15 days ago"] = await time(() =>
    store.listJobs({ createdBefore: Date.now() - 15 * DAY, limit: 51 }),
  );
  const middle = (await store.listJobs({ limit: 1, createdBefore: Date.now() - 15 * DAY }))[0]!;
  const after = { createdAt: middle.createdAt, jobId: middle.jobId };
  out["page half way back"] = await time(() => store.listJobs({ limit: 51, after }));
  out["user, page half way back"] = await time(() => store.listJobs({ username: "user7", limit: 51, after }));
  out["status, page half way back"] = await time(() => store.listJobs({ statuses: ["running"], limit: 51, after }));
  return out;
}

/** Fills a fresh database of `dialect` with `jobs` jobs and times the queries. */
export async function queryBench(dialect: "sqlite" | "mysql", jobs: number, work?: string): Promise<QueryFigures> {
  const dir = work ?? mkdtempSync(join(tmpdir(), "jobwatch-bench-list-"));
  const database =
    dialect === "mysql"
      ? await freshDatabase("mysql")
      : { url: `sqlite:${join(dir, `list-${jobs}.db`)}`, drop: async () => undefined };
  try {
    await fill(database.url, jobs);
    const store = createStore(database.url);
    try {
      await store.migrate();
      const statisticsMs = await time(() => store.getStatistics(undefined, DAY));
      const statisticsUserMs = await time(() => store.getStatistics("user7", DAY));
      const statisticsTypedMs = await time(() =>
        store.getStatistics(undefined, DAY, { durationsByOperationType: true }),
      );
      return { statisticsMs, statisticsUserMs, statisticsTypedMs, listMs: await measureLists(store) };
    } finally {
      await store.close();
    }
  } finally {
    await database.drop();
    if (work === undefined) rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const jobs = Number(process.argv[2] ?? 1_000_000);
  for (const dialect of TEST_MYSQL_URL ? (["sqlite", "mysql"] as const) : (["sqlite"] as const)) {
    const f = await queryBench(dialect, jobs);
    console.log(
      `${dialect}, ${jobs} jobs: GetJobStatistics all ${f.statisticsMs.toFixed(2)} ms, one user ${f.statisticsUserMs.toFixed(2)} ms, ` +
        `all with durations by operation type ${f.statisticsTypedMs.toFixed(2)} ms`,
    );
    for (const [what, ms] of Object.entries(f.listMs))
      console.log(`  ListJobs ${what.padEnd(34)} ${ms.toFixed(2).padStart(8)} ms`);
  }
}

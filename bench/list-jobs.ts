// ListJobs and GetJobStatistics against a large jobs table (default 1,000,000 rows, SQLite): each query is
// timed at full size and at a baseline of 1% of the rows in this same run, so the ratio shows how the
// query grows with the table (about 1x for an indexed keyset page, about 100x for a full scan).
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { openDatabase } from "../src/store/connect.js";
import { migrateToLatest } from "../src/store/migrations.js";
import { createStore } from "../src/store/sql-job-store.js";
import type { JobStore } from "../src/store/store.js";

const JOBS = Number(process.env.BENCH_JOBS ?? 1_000_000);
const USERS = 1000;
const STATUSES = ["completed", "completed", "completed", "failed", "cancelled", "running", "pending"];
const OPERATIONS = ["add_golden_repo", "refresh_golden_repo", "remove_golden_repo", "add_golden_repo_index"];
const REPEAT = 20;

/** A jobs table of `count` rows spread over USERS users and the last 30 days, written straight to SQLite. */
async function fill(count: number): Promise<{ url: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), "jobwatch-bench-list-"));
  const url = `sqlite:${join(dir, "bench.db")}`;
  const open = openDatabase(url);
  await migrateToLatest(open);
  if (open.dialect !== "sqlite") throw new Error("unreachable");
  const insert = open.sqlite.prepare(
    `INSERT INTO jobs (job_id, operation_type, username, status, progress, cancel_requested, revision,
       created_at, updated_at, started_at, completed_at)
     VALUES (?, ?, ?, ?, ?, 0, 1, ?, ?, ?, ?)`,
  );
  const now = Date.now();
  open.sqlite.transaction(() => {
    for (let i = 0; i < count; i++) {
      const status = STATUSES[i % STATUSES.length]!;
      const created = now - Math.floor(((count - i) / count) * 30 * 86_400_000);
      const started = status === "pending" ? null : created + 1000;
      const finished = ["completed", "failed", "cancelled"].includes(status) ? created + 1000 + (i % 600) * 1000 : null;
      insert.run(
        randomUUID(),
        OPERATIONS[i % OPERATIONS.length],
        `user${i % USERS}`,
        status,
        finished ? 100 : 50,
        created,
        finished ?? created,
        started,
        finished,
      );
    }
  })();
  await open.db.destroy();
  return { url, dir };
}

/** Median ms of REPEAT runs of `query`. */
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

/** The queries of ListJobs and GetJobStatistics that a user and an admin make. */
async function measure(store: JobStore): Promise<Record<string, number>> {
  const firstPage = await store.listJobs({ limit: 50 });
  // A cursor deep into the table: the 50 jobs after one created half way back.
  const middle = (await store.listJobs({ limit: 1, createdBefore: Date.now() - 15 * 86_400_000 }))[0]!;
  const after = { createdAt: middle.createdAt, jobId: middle.jobId };
  return {
    "ListJobs admin, first page": await time(() => store.listJobs({ limit: 50 })),
    "ListJobs admin, page half way back": await time(() => store.listJobs({ limit: 50, after })),
    "ListJobs one user, first page": await time(() => store.listJobs({ username: "user7", limit: 50 })),
    "ListJobs one user, page half way back": await time(() => store.listJobs({ username: "user7", limit: 50, after })),
    "ListJobs admin, status=failed": await time(() => store.listJobs({ statuses: ["failed"], limit: 50 })),
    "GetJobStatistics one user": await time(() => store.getStatistics("user7", 86_400_000)),
    "GetJobStatistics all jobs": await time(() => store.getStatistics(undefined, 86_400_000)),
    ...(firstPage.length === 50 ? {} : { "(first page short)": 0 }),
  };
}

async function run(count: number): Promise<Record<string, number>> {
  const { url, dir } = await fill(count);
  const store = createStore(url);
  try {
    await store.migrate();
    return await measure(store);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const baselineJobs = Math.max(1000, Math.floor(JOBS / 100));
const baseline = await run(baselineJobs);
const full = await run(JOBS);
console.log(
  `ListJobs / GetJobStatistics on SQLite, median of ${REPEAT}: ${JOBS} jobs against a baseline of ${baselineJobs} jobs`,
);
for (const [name, ms] of Object.entries(full)) {
  const base = baseline[name]!;
  console.log(
    `  ${name.padEnd(40)} ${ms.toFixed(2).padStart(8)} ms  (baseline ${base.toFixed(2)} ms, ratio ${(ms / base).toFixed(1)}x)`,
  );
}

// job_counts: how many jobs there are per (username, operation_type, status), changed by the same
// transaction as the jobs it counts, so GetJobStatistics reads a few rows instead of counting every job.
import { CompiledQuery } from "kysely";
import type { Dialect } from "./connect.js";

/** A change of job_counts: `delta` more (or fewer) jobs of one user, operation type and status. */
export interface CountDelta {
  username: string;
  operationType: string;
  status: string;
  delta: number;
}

/** A job that moved from status `from` to `to` (null: created, or deleted). */
export function moved(
  job: { username: string; operationType: string },
  from: string | null,
  to: string | null,
): CountDelta[] {
  const deltas: CountDelta[] = [];
  if (from !== null) deltas.push({ username: job.username, operationType: job.operationType, status: from, delta: -1 });
  if (to !== null) deltas.push({ username: job.username, operationType: job.operationType, status: to, delta: 1 });
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
  const q = dialect === "mysql" ? "`" : '"';
  const upsert =
    dialect === "mysql"
      ? "on duplicate key update n = n + values(n)"
      : "on conflict (username, operation_type, status) do update set n = n + excluded.n";
  return CompiledQuery.raw(
    `insert into ${q}job_counts${q} (${q}username${q}, ${q}operation_type${q}, ${q}status${q}, ${q}n${q}) values ${values} ${upsert}`,
    rows.flatMap((d) => [d.username, d.operationType, d.status, d.delta]),
  );
}

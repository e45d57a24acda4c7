// Change-feed queries: where the feed ends, what follows a seq, and the job as of each feed entry.
import { sql } from "kysely";
import type { Job } from "./job.js";
import { snapshotToJob } from "./rows.js";
import type { FeedEntry, SeqRange } from "./store.js";
import type { StoreDb } from "./transaction.js";

/** Seqs per `where seq in (...)` of snapshotsAt. */
const SNAPSHOT_CHUNK = 500;

/**
 * The seq to start reading the feed after; see JobStore.latestSeq. On MySQL a hole younger than
 * `gapGraceMs` (an insert not yet committed) ends the scan before it.
 */
export async function latestSeq(db: StoreDb, gapGraceMs: number): Promise<number> {
  if (db.dialect === "sqlite") {
    // SQLite has one writer at a time: seq order is commit order.
    const row = await db.kysely
      .selectFrom("job_events")
      .select((eb) => eb.fn.max("seq").as("m"))
      .executeTakeFirst();
    return Number(row?.m ?? 0);
  }
  // MySQL: stop before a recent hole (an insert not yet committed) so a reader starting here misses nothing.
  const rows = await db.kysely
    .selectFrom("job_events")
    .select(["seq", "at"])
    .orderBy("seq", "desc")
    .limit(200)
    .execute();
  if (rows.length === 0) return 0;
  const asc = rows.map((r) => ({ seq: Number(r.seq), at: Number(r.at) })).reverse();
  const now = db.now();
  for (let i = 1; i < asc.length; i++) {
    const prev = asc[i - 1]!;
    const cur = asc[i]!;
    if (cur.seq !== prev.seq + 1 && cur.at > now - gapGraceMs) return prev.seq;
  }
  return asc[asc.length - 1]!.seq;
}

/** Feed entries with seq > afterSeq, in seq order, at most `limit`. */
export async function readFeed(db: StoreDb, afterSeq: number, limit: number): Promise<FeedEntry[]> {
  // Plain seq order: the reader (the watch hub's ChangeFeed) tracks holes left by seqs that commit
  // out of order, and re-reads them until they fill or time out.
  const rows = await db.kysely
    .selectFrom("job_events")
    .select(["seq", "job_id", "revision"])
    .where("seq", ">", afterSeq)
    .orderBy("seq")
    .limit(limit)
    .execute();
  return rows.map((r) => ({ seq: Number(r.seq), jobId: r.job_id, revision: Number(r.revision) }));
}

/**
 * Feed entries whose seq lies in one of `ranges` (inclusive), in seq order, at most `limit`: the
 * change feed re-reads only the holes it is waiting on, not everything after the oldest one. With
 * `causal`, a causal read (on Galera: after this node applied everything committed anywhere).
 */
export async function readFeedRanges(
  db: StoreDb,
  ranges: readonly SeqRange[],
  limit: number,
  options: { causal?: boolean } = {},
): Promise<FeedEntry[]> {
  if (ranges.length === 0) return [];
  const query = db.kysely
    .selectFrom("job_events")
    .select(["seq", "job_id", "revision"])
    .where((eb) =>
      eb.or(ranges.map((r) => (r.from === r.to ? eb("seq", "=", r.from) : eb.between("seq", r.from, r.to)))),
    )
    .orderBy("seq")
    .limit(limit);
  const rows = options.causal ? await db.causal.select(query) : await query.execute();
  return rows.map((r) => ({ seq: Number(r.seq), jobId: r.job_id, revision: Number(r.revision) }));
}

/**
 * How long ago the oldest open transaction that has written rows began on this database server (ms), null when
 * none is; see JobStore.oldestOpenWriterMs. trx_started has whole seconds, so the age is over-stated by up to a
 * second: a hole is kept a little longer, never given up early. Without the PROCESS privilege: undefined.
 */
export async function oldestOpenWriterMs(db: StoreDb): Promise<number | null | undefined> {
  if (db.dialect === "sqlite") return null;
  try {
    const { rows } = await sql<{ age: number | string | null }>`
      select timestampdiff(microsecond, min(trx_started), now(6)) div 1000 as age
      from information_schema.innodb_trx where trx_rows_modified > 0`.execute(db.kysely);
    const age = rows[0]?.age;
    return age === null || age === undefined ? null : Number(age);
  } catch (error) {
    const { code, errno } = (typeof error === "object" && error !== null ? error : {}) as {
      code?: unknown;
      errno?: unknown;
    };
    if (code === "ER_SPECIFIC_ACCESS_DENIED_ERROR" || errno === 1227) return undefined;
    throw error;
  }
}

/** The job as of each of the given feed seqs (same order as asked; missing ones left out). */
export async function snapshotsAt(db: StoreDb, seqs: readonly number[]): Promise<Job[]> {
  if (seqs.length === 0) return [];
  const bySeq = new Map<number, Job>();
  for (const chunk of chunks([...new Set(seqs)], SNAPSHOT_CHUNK)) {
    const rows = await db.kysely
      .selectFrom("job_events")
      .select(["seq", "snapshot"])
      .where("seq", "in", chunk)
      .execute();
    for (const r of rows) bySeq.set(Number(r.seq), snapshotToJob(r.snapshot));
  }
  return seqs.flatMap((s) => {
    const job = bySeq.get(s);
    return job ? [job] : [];
  });
}

/** The job as of each revision in (afterRevision, beforeRevision), in order. */
export async function snapshotsBetween(
  db: StoreDb,
  jobId: string,
  afterRevision: number,
  beforeRevision: number,
): Promise<Job[]> {
  const rows = await db.kysely
    .selectFrom("job_events")
    .select("snapshot")
    .where("job_id", "=", jobId)
    .where("revision", ">", afterRevision)
    .where("revision", "<", beforeRevision)
    .orderBy("revision")
    .execute();
  return rows.map((r) => snapshotToJob(r.snapshot));
}

/**
 * The job as of each revision in (afterRevision, beforeRevision) at which its status or cancel flag
 * changed, in order, at most `limit`. Reads the (job_id, transition_revision) index and only those
 * rows: a job has a handful of transitions however many progress reports it made.
 */
export async function transitionsBetween(
  db: StoreDb,
  jobId: string,
  afterRevision: number,
  beforeRevision: number,
  limit: number,
): Promise<Job[]> {
  const rows = await db.kysely
    .selectFrom("job_events")
    .select("snapshot")
    .where("job_id", "=", jobId)
    .where("transition_revision", ">", afterRevision)
    .where("transition_revision", "<", beforeRevision)
    .orderBy("transition_revision")
    .limit(limit)
    .execute();
  return rows.map((r) => snapshotToJob(r.snapshot));
}

function* chunks<T>(items: T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

// The reading side of the job_events change feed: a cursor that survives autoincrement seqs committing
// out of order, so a change written by another replica is seen once and never skipped.
import type { Logger } from "pino";
import type { FeedEntry, JobStore } from "../store/store.js";
import { FeedPosition } from "./feed-position.js";

/** Holes named in one readFeedRanges query (an OR of that many ranges). */
const GAP_RANGES_PER_QUERY = 250;

/**
 * A hole older than gapTimeoutMs is still kept while a transaction that began before it was seen is open on the
 * database server, up to this long: past innodb_lock_wait_timeout's default (50 s), the longest one of jobwatch's
 * own writes waits for a row lock.
 */
const DEFAULT_GAP_MAX_WAIT_MS = 60_000;

/**
 * How much older than the oldest open writer a hole may be and still be kept: the hole's age is counted from the
 * start of the read that found it, a little before the database looked.
 */
const WRITER_MARGIN_MS = 1000;

/** A run of seqs above the cursor not visible yet, and when it was first seen missing. */
interface Gap {
  from: number;
  to: number;
  since: number;
}

/** What one read found; apply it with commit() once the entries are handled, or drop it to read them again. */
export interface FeedBatch {
  /** Entries not returned by an earlier committed batch, in seq order. */
  entries: FeedEntry[];
  commit(): void;
}

/** Dependencies of a ChangeFeed. */
export interface ChangeFeedDeps {
  store: Pick<JobStore, "latestSeq" | "readFeed" | "readFeedRanges"> & Partial<Pick<JobStore, "oldestOpenWriterMs">>;
  /** How long a missing seq is waited for before it counts as a rolled-back insert (unless a writer may hold it). */
  gapTimeoutMs: number;
  /** The longest a hole is kept for an open writer that may hold it (default DEFAULT_GAP_MAX_WAIT_MS). */
  gapMaxWaitMs?: number | undefined;
  log?: Logger | undefined;
  /** Entries per readFeed query. */
  pageSize?: number | undefined;
  /** Queries per read when pages come back full (a burst); one query per read otherwise. */
  maxPages?: number | undefined;
  /** The most holes re-read by naming them (in queries of GAP_RANGES_PER_QUERY); beyond, the read starts at the oldest hole. */
  maxGapRanges?: number | undefined;
  /** How often the holes are re-read (new entries are read on every read()); default 1000 ms. */
  gapRereadMs?: number | undefined;
  now?: (() => number) | undefined;
}

/**
 * Follows job_events by seq. On MySQL an autoincrement seq is taken at insert and becomes visible at
 * commit, so seq 10 may appear after seq 11 (and a rolled-back insert leaves 10 missing forever; on
 * Galera, auto_increment_increment leaves two seqs of every three unused). The feed therefore remembers
 * the seqs it skipped over as gaps, re-reads exactly those until the missing entry shows up or the gap
 * is older than gapTimeoutMs and a causal read (Galera: after the node applied every commit) still misses
 * it, and returns each seq at most once.
 */
export class ChangeFeed {
  /** Highest seq seen. */
  private high = 0;
  /** Seqs below `high` not seen yet, ascending, disjoint. */
  private gaps: Gap[] = [];
  private readonly pageSize: number;
  private readonly maxPages: number;
  private readonly maxGapRanges: number;
  private readonly gapRereadMs: number;
  /** When the holes were last re-read (by a committed batch). */
  private gapsReadAt = Number.NEGATIVE_INFINITY;
  /** When the holes about to be given up were last read causally (by a committed batch). */
  private causalReadAt = Number.NEGATIVE_INFINITY;
  /** A read failed since the last committed batch (the database unreachable, a Galera node out of the primary component). */
  private readFailed = false;
  private readonly now: () => number;

  constructor(private readonly deps: ChangeFeedDeps) {
    this.pageSize = deps.pageSize ?? 500;
    this.maxPages = deps.maxPages ?? 4;
    this.maxGapRanges = deps.maxGapRanges ?? 2000;
    this.gapRereadMs = deps.gapRereadMs ?? 1000;
    this.now = deps.now ?? Date.now;
  }

  /** Starts after everything in the feed now. */
  async start(): Promise<void> {
    this.reset(Number(await this.deps.store.latestSeq()));
  }

  /** Starts after `seq`, forgetting any gaps. */
  reset(seq: number): void {
    this.high = seq;
    this.gaps = [];
  }

  /** The seq the next read starts after: every seq up to it was seen (or given up). */
  get cursor(): number {
    return this.gaps[0] ? this.gaps[0].from - 1 : this.high;
  }

  /** Every seq seen so far, as a position (what a WatchJobs cursor is made of). */
  get position(): FeedPosition {
    return new FeedPosition(
      this.high,
      this.gaps.map((g) => ({ from: g.from, to: g.to })),
    );
  }

  /**
   * Reads what is new since the last committed batch: one query for the seqs above the highest seen, then,
   * when that found something (or at least once per gapRereadMs, and before a hole is given up), queries
   * naming exactly the holes it started with: not every entry after the oldest one, which on Galera (each
   * node takes every third seq, so holes never close) re-read 5 s of entries on every poll. With more
   * than maxGapRanges holes it reads everything from the oldest hole instead, the bounded fallback.
   * An entry is returned only after every earlier revision of its job that is in the feed: see below.
   */
  async read(): Promise<FeedBatch> {
    try {
      return await this.readOnce();
    } catch (error) {
      this.readFailed = true;
      throw error;
    }
  }

  private async readOnce(): Promise<FeedBatch> {
    const now = this.now();
    let high = this.high;
    // A hole's time runs only while the feed can read: after reads failed (a Galera node out of the primary
    // component, the database gone) every hole starts its gapTimeoutMs again. A transaction that took its seq
    // before the outage commits when it ends (on Galera, the moment the primary component is back), which may be
    // later than gapTimeoutMs after the seq was taken: given up at the first read after the outage, its job's
    // creation was never shown to a WatchJobs stream (found by test/guarantees, two Galera nodes killed).
    const restart = this.readFailed;
    const gaps = this.gaps.map((g) => ({ ...g, since: restart ? Math.max(g.since, now) : g.since }));
    const entries: FeedEntry[] = [];
    const take = (row: FeedEntry): void => {
      const seq = Number(row.seq);
      const entry: FeedEntry = { seq, jobId: row.jobId, revision: Number(row.revision) };
      if (seq > high) {
        if (seq > high + 1) gaps.push({ from: high + 1, to: seq - 1, since: now });
        high = seq;
        entries.push(entry);
      } else if (fillGap(gaps, seq)) {
        entries.push(entry);
      }
    };
    const holes = gaps.length;
    let after = high;
    // A hole about to be given up gets a last look, whenever the previous one was.
    const due =
      holes > 0 &&
      (now - this.gapsReadAt >= this.gapRereadMs || gaps.some((g) => now - g.since >= this.deps.gapTimeoutMs));
    let gapsRead = false;
    if (holes > this.maxGapRanges && due) {
      // Bounded fallback: one pass from the oldest hole (one statement sees holes and new entries alike).
      after = gaps[0]!.from - 1;
      gapsRead = true;
    }
    for (let page = 0; page < this.maxPages; page++) {
      const rows = await this.deps.store.readFeed(after, this.pageSize);
      for (const row of rows) take(row);
      if (rows.length < this.pageSize) break;
      // A full page: the rest of a burst is above what we have seen; gaps below are re-read next time.
      after = high;
    }
    // The holes this read started with are looked at AFTER the new entries, and whenever new entries came: a new
    // entry of a job means its previous revision had committed before it was written, so a hole holding that
    // revision is visible now. Looked at only once per gapRereadMs, that earlier revision of the job came up to a
    // second after the later ones (a WatchJobs stream delivered r1 after r9: time travel, found by
    // test/guarantees). Without new entries a hole fills rarely (a transaction that took long to commit), and
    // looking once per gapRereadMs costs that rare change at most that much delay.
    // Beyond maxGapRanges holes, the newest are named (where a new entry's previous revision most likely is), and
    // the fallback above reads all of them once due.
    if (!gapsRead && holes > 0 && (entries.length > 0 || due)) {
      const ranges = gaps.slice(Math.max(0, holes - this.maxGapRanges), holes).map((g) => ({ from: g.from, to: g.to }));
      for (let i = 0; i < ranges.length; i += GAP_RANGES_PER_QUERY) {
        for (const row of await this.deps.store.readFeedRanges(
          ranges.slice(i, i + GAP_RANGES_PER_QUERY),
          this.pageSize,
        )) {
          take(row);
        }
      }
      gapsRead = holes <= this.maxGapRanges;
    }
    // A hole is given up only after a causal look (at most one per gapRereadMs; until then it stays). On Galera a
    // node applies the others' commits after they were acknowledged, and under load (a node rejoining by IST, flow
    // control) that took longer than gapTimeoutMs: a WatchJobs stream missed a job's creation, acknowledged 1.2 s
    // after its seq was taken, that its replica's node showed more than 8 s later (found by test/guarantees). The
    // causal read waits until this node has applied everything committed anywhere before it started.
    const expiring = gaps.filter((g) => now - g.since >= this.deps.gapTimeoutMs);
    let causalRead = false;
    if (expiring.length > 0 && now - this.causalReadAt >= this.gapRereadMs) {
      const ranges = expiring.map((g) => ({ from: g.from, to: g.to }));
      for (let i = 0; i < ranges.length; i += GAP_RANGES_PER_QUERY) {
        for (const row of await this.deps.store.readFeedRanges(
          ranges.slice(i, i + GAP_RANGES_PER_QUERY),
          this.pageSize,
          {
            causal: true,
          },
        )) {
          take(row);
        }
      }
      causalRead = true;
    }
    // Past the gap timeout, a hole is kept while a transaction that has written rows, open since before the hole was
    // seen, is still open: it may hold the seq (a transition takes its event's seq last, but its commit can still
    // stall: a Galera cluster evicting a node, a slow disk). Given up after 5 s, its change reached no watcher
    // (test/store-feed-late-commit.test.ts). On Galera a writer on another node is not seen here; the causal read
    // covers what that node has committed.
    let live = gaps;
    if (causalRead) {
      const writerMs = await this.deps.store.oldestOpenWriterMs?.();
      const maxWait = this.deps.gapMaxWaitMs ?? DEFAULT_GAP_MAX_WAIT_MS;
      const held = (g: Gap): boolean =>
        typeof writerMs === "number" && now - g.since <= writerMs + WRITER_MARGIN_MS && now - g.since < maxWait;
      live = gaps.filter((g) => now - g.since < this.deps.gapTimeoutMs || held(g));
      const overdue = gaps.filter(
        (g) => typeof writerMs === "number" && now - g.since >= maxWait && now - g.since <= writerMs + WRITER_MARGIN_MS,
      );
      if (overdue.length > 0)
        this.deps.log?.warn(
          { seqs: overdue.map(formatGap), waitedMs: maxWait, oldestWriterMs: writerMs },
          "change feed: seqs given up while a transaction is still open; a watcher may miss their change",
        );
    }
    if (live.length !== gaps.length) {
      const dropped = gaps.filter((g) => !live.includes(g)).map(formatGap);
      this.deps.log?.debug({ seqs: dropped }, "change feed: seqs never committed, treated as rolled back");
    }
    entries.sort((a, b) => a.seq - b.seq);
    return {
      entries,
      commit: () => {
        this.high = high;
        this.gaps = live;
        if (restart) this.readFailed = false;
        if (gapsRead) this.gapsReadAt = now;
        if (causalRead) this.causalReadAt = now;
      },
    };
  }
}

/** "12" or "12-14". */
function formatGap(g: Gap): string {
  return g.from === g.to ? `${g.from}` : `${g.from}-${g.to}`;
}

/** Removes `seq` from the gap containing it; false when no gap contains it (already seen). */
function fillGap(gaps: Gap[], seq: number): boolean {
  const i = gaps.findIndex((g) => g.from <= seq && seq <= g.to);
  if (i < 0) return false;
  const g = gaps[i]!;
  const parts: Gap[] = [];
  if (g.from < seq) parts.push({ from: g.from, to: seq - 1, since: g.since });
  if (seq < g.to) parts.push({ from: seq + 1, to: g.to, since: g.since });
  gaps.splice(i, 1, ...parts);
  return true;
}

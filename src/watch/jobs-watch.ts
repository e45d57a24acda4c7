// WatchJobs: streams of every job matching a filter, fed by the one change-feed poll of this process,
// each message carrying a cursor from which a stream resumes on any replica with no gap and no repeat.
import { setTimeout as sleep } from "node:timers/promises";
import { FailedPreconditionError, OutOfRangeError, UnavailableError } from "../errors.js";
import type { Job } from "../store/job.js";
import type { FeedEntry, JobStore, ListJobsQuery } from "../store/store.js";
import type { FeedChange, FeedPeer } from "./feed-poller.js";
import { decodeCursor, encodeCursor, FeedPosition } from "./feed-position.js";
import type { ChangeKind, JobsFilter } from "./jobs-filter.js";
import { classifyChange, matches } from "./jobs-filter.js";
import { JobsStream } from "./jobs-stream.js";

/** A filter may match at most this many jobs when a stream starts without a cursor. */
export const MAX_SNAPSHOT_JOBS = 10_000;
/** Jobs per SNAPSHOT message. */
const SNAPSHOT_PAGE_JOBS = 100;
/** Bytes per SNAPSHOT message, roughly (see approximateSize). */
const SNAPSHOT_PAGE_BYTES = 1024 * 1024;
/** Jobs per store query while the snapshot is counted and read. */
const LIST_PAGE_JOBS = 500;
/** Changes one stream may hold for a reader that does not read, after coalescing; then it is ended. */
export const MAX_QUEUED_CHANGES = 10_000;
/** Feed entries per query while a resumed stream catches up. */
const CATCH_UP_PAGE = 500;

/** One message of a WatchJobs stream, before it becomes protobuf. */
export type JobsEvent =
  | { type: "snapshot"; jobs: Job[]; cursor: string }
  | { type: "synced"; cursor: string }
  | { type: ChangeKind; job: Job; cursor: string }
  | { type: "bookmark"; cursor: string };

/** What JobsWatches needs from the store. */
type JobsWatchStore = Pick<JobStore, "readFeed" | "snapshotsAt" | "listJobs">;

/** Dependencies of JobsWatches. */
export interface JobsWatchesDeps {
  store: JobsWatchStore;
  /** A cursor older than this is OUT_OF_RANGE (the feed entries after it may be pruned). */
  maxCursorAgeMs: number;
  /** An idle stream gets a bookmark this often. */
  bookmarkMs: number;
  /**
   * How long a cursor ahead of this replica's poll may wait for the poll to catch up (another replica may
   * have seen newer changes) before it counts as a cursor of another database: a few poll intervals.
   */
  aheadGraceMs?: number | undefined;
  /** Changes one stream may hold for its reader (default MAX_QUEUED_CHANGES). */
  maxQueuedChanges?: number | undefined;
  now?: () => number;
}

/** How a stream starts. */
export interface JobsWatchOptions {
  filter: JobsFilter;
  /** Resume after this cursor; undefined starts with a snapshot. */
  afterCursor?: string | undefined;
  signal: AbortSignal;
}

/**
 * The WatchJobs streams of this process, a peer of the WatchJob hub behind the feed poller. receive()
 * gets every batch the poll reads (one poll per interval whatever the number of streams, and one soon
 * after each commit of this process while streams are open) with the jobs' snapshots, and hands each
 * change to the streams of the job's user and to the streams over every user: a lookup, not a scan.
 */
export class JobsWatches implements FeedPeer {
  private readonly byUser = new Map<string, Set<JobsStream>>();
  private readonly everyone = new Set<JobsStream>();
  /** The feed position of the last batch delivered (what the poll has seen). */
  private position = new FeedPosition(0);
  private count = 0;
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly deps: JobsWatchesDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Open streams. */
  get streamCount(): number {
    return this.count;
  }

  /** FeedPeer: open streams. */
  get openCount(): number {
    return this.count;
  }

  /** FeedPeer: where the feed poll starts (before the first batch). */
  startAt(position: FeedPosition): void {
    this.position = position.clone();
  }

  /** FeedPeer: with a stream open, any change may match its filter. */
  wants(): boolean {
    return this.count > 0;
  }

  /** FeedPeer: the feed is lost; every stream ends UNAVAILABLE, to resume from its last cursor elsewhere. */
  feedLost(): void {
    this.endAll(
      () =>
        new UnavailableError(
          "lost the change feed (database unavailable): reconnect, to another replica if this one stays down, " +
            "with after_cursor set to the last cursor you received",
        ),
    );
  }

  /** FeedPeer: one batch of the feed, in seq order, with each entry's snapshot (undefined if gone), and the poll's position after it. */
  receive(entries: readonly FeedChange[], after: FeedPosition): void {
    if (this.count > 0) {
      const position = this.position.clone();
      for (const { seq, job } of entries) {
        position.add(seq);
        if (!job) continue;
        const mine = this.byUser.get(job.username);
        if (!mine && this.everyone.size === 0) continue;
        const at = position.clone();
        if (mine) for (const s of mine) s.offer(seq, job, at);
        for (const s of this.everyone) s.offer(seq, job, at);
      }
    }
    this.position = after.clone();
  }

  /** Ends every stream (shutdown, or the change feed lost): each reader throws what `failure` makes. */
  endAll(failure: () => unknown, closing = false): void {
    if (closing) this.closed = true;
    for (const set of [this.everyone, ...this.byUser.values()]) for (const s of set) s.end(failure);
  }

  /**
   * What WatchJobs sends. Without a cursor: SNAPSHOT pages of the matching jobs, SYNCED, then changes.
   * With one: the changes after it (read back from the feed up to where the poll is, then live). Every
   * message has the cursor of the position right after it; an idle stream gets a BOOKMARK every bookmarkMs.
   */
  async *watch(opts: JobsWatchOptions): AsyncGenerator<JobsEvent> {
    if (this.closed) throw new UnavailableError("server is shutting down: reconnect and resume with after_cursor");
    const cursor = opts.afterCursor ? decodeCursor(opts.afterCursor, this.now(), this.deps.maxCursorAgeMs) : undefined;
    if (cursor) await this.awaitPosition(cursor.position.high, opts.signal);
    opts.signal.throwIfAborted();
    const stream = new JobsStream(opts.filter, this.deps.maxQueuedChanges ?? MAX_QUEUED_CHANGES);
    // Registered before reading anything, so a change the poll delivers meanwhile waits in the stream.
    const registeredAt = this.position.clone();
    const release = this.register(stream);
    const onAbort = (): void => stream.end(() => opts.signal.reason);
    opts.signal.addEventListener("abort", onAbort, { once: true });
    try {
      if (cursor) {
        stream.base = cursor.position;
        for await (const event of this.catchUp(stream, cursor.position, registeredAt)) {
          yield { type: event.kind, job: event.job, cursor: this.cursorOf(event.position) };
        }
      } else {
        const revisions = new Map<string, number>();
        // A cursor from the middle of a snapshot cannot give back the rest of it: resume from SYNCED on.
        const at = this.cursorOf(registeredAt);
        for await (const page of this.snapshot(opts.filter, revisions)) {
          yield { type: "snapshot", jobs: page, cursor: at };
        }
        stream.base = await this.shownBySnapshot(registeredAt, revisions);
        yield { type: "synced", cursor: this.cursorOf(stream.base) };
      }
      for (;;) {
        const item = await stream.next(this.deps.bookmarkMs, opts.signal);
        if (item === undefined) {
          // Idle: everything the poll has seen is delivered, so its position is this stream's too.
          const here = stream.base ? this.position.union(stream.base) : this.position;
          yield { type: "bookmark", cursor: this.cursorOf(here) };
          continue;
        }
        // Offered while the snapshot was read: the snapshot may show it already.
        if (stream.base?.covers(item.seq)) continue;
        const here = stream.base ? item.position.union(stream.base) : item.position;
        // Once the poll has seen all the resumed cursor had, the cursor no longer adds anything.
        if (stream.base && item.position.includes(stream.base)) stream.base = undefined;
        yield { type: item.kind, job: item.job, cursor: this.cursorOf(here) };
      }
    } finally {
      opts.signal.removeEventListener("abort", onAbort);
      stream.end(() => new UnavailableError("stream ended"));
      release();
    }
  }

  /**
   * Waits (a few poll intervals at most) until the poll has seen `high`. A cursor further ahead than
   * that is not from this database's feed (a restored or reset database, another deployment): resuming
   * from it would wait forever for changes that are numbered lower, so it is OUT_OF_RANGE.
   */
  private async awaitPosition(high: number, signal: AbortSignal): Promise<void> {
    const deadline = this.now() + (this.deps.aheadGraceMs ?? 1000);
    while (this.position.high < high) {
      signal.throwIfAborted();
      if (this.now() >= deadline) {
        throw new OutOfRangeError(
          `after_cursor is ahead of this server's change feed (seq ${high} > ${this.position.high}): it comes from ` +
            "another database or one that was restored; start again without a cursor",
        );
      }
      await sleep(Math.min(50, Math.max(1, deadline - this.now())));
    }
  }

  private cursorOf(position: FeedPosition): string {
    return encodeCursor(position, this.now());
  }

  private register(stream: JobsStream): () => void {
    const username = stream.filter.username;
    let set = username === undefined ? this.everyone : this.byUser.get(username);
    if (!set) {
      set = new Set();
      this.byUser.set(username as string, set);
    }
    set.add(stream);
    this.count++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.count--;
      set.delete(stream);
      if (username !== undefined && set.size === 0) this.byUser.delete(username);
    };
  }

  /**
   * The matching jobs now, in pages, newest first; FAILED_PRECONDITION before the first page when more
   * than MAX_SNAPSHOT_JOBS match. Counted in a first pass so no more than a page is held in memory.
   */
  private async *snapshot(filter: JobsFilter, revisions: Map<string, number>): AsyncGenerator<Job[]> {
    const query: ListJobsQuery = {
      limit: LIST_PAGE_JOBS,
      username: filter.username,
      statuses: filter.statuses.size > 0 ? [...filter.statuses] : undefined,
      operationType: filter.operationType,
      resource: filter.resource,
      createdAfter: filter.createdAfter,
    };
    let counted = 0;
    for await (const page of this.pages(query)) {
      counted += page.filter((job) => matches(filter, job)).length;
      if (counted > MAX_SNAPSHOT_JOBS) {
        throw new FailedPreconditionError(
          `more than ${MAX_SNAPSHOT_JOBS} jobs match the filter: narrow it (statuses, operation_type, resource, ` +
            "created_after, username)",
          "FILTER",
          "watch_jobs",
        );
      }
    }
    let out: Job[] = [];
    let bytes = 0;
    for await (const page of this.pages(query)) {
      for (const job of page) {
        if (!matches(filter, job)) continue;
        revisions.set(job.jobId, job.revision);
        // Pages cut by size too, so a page of jobs with large results stays far below 4 MiB.
        const size = approximateSize(job);
        if (out.length > 0 && (out.length >= SNAPSHOT_PAGE_JOBS || bytes + size > SNAPSHOT_PAGE_BYTES)) {
          yield out;
          out = [];
          bytes = 0;
        }
        out.push(job);
        bytes += size;
      }
    }
    if (out.length > 0) yield out;
  }

  /** listJobs page after page (keyset on created_at, job_id). */
  private async *pages(query: ListJobsQuery): AsyncGenerator<Job[]> {
    let after: ListJobsQuery["after"];
    for (;;) {
      const page = await this.deps.store.listJobs({ ...query, after });
      if (page.length > 0) yield page;
      const last = page[page.length - 1];
      if (!last || page.length < query.limit) return;
      after = { createdAt: last.createdAt, jobId: last.jobId };
    }
  }

  /**
   * The position a snapshot stands for: the poll's position at registration plus every later feed entry
   * the snapshot already shows (an entry of a listed job at or below its listed revision). Changes after
   * it, and changes of jobs not listed, stay unseen and are sent as changes.
   */
  private async shownBySnapshot(from: FeedPosition, revisions: ReadonlyMap<string, number>): Promise<FeedPosition> {
    const position = from.clone();
    let after = from.low;
    for (;;) {
      const rows = await this.deps.store.readFeed(after, CATCH_UP_PAGE);
      for (const row of rows) {
        if (from.covers(row.seq)) continue;
        const listed = revisions.get(row.jobId);
        if (listed !== undefined && row.revision <= listed) position.add(row.seq);
      }
      const last = rows[rows.length - 1];
      if (!last || rows.length < CATCH_UP_PAGE) return position;
      after = last.seq;
    }
  }

  /**
   * The changes between a resumed cursor and where the poll was at registration: feed entries the cursor
   * has not seen and the poll has (those the poll has not seen yet arrive live), read a page at a time.
   */
  private async *catchUp(
    stream: JobsStream,
    from: FeedPosition,
    until: FeedPosition,
  ): AsyncGenerator<{ kind: ChangeKind; job: Job; position: FeedPosition }> {
    const position = from.clone();
    let after = from.low;
    while (after < until.high) {
      const rows: FeedEntry[] = await this.deps.store.readFeed(after, CATCH_UP_PAGE);
      const wanted = rows.filter((r) => r.seq <= until.high && !from.covers(r.seq) && until.covers(r.seq));
      const snapshots = await this.deps.store.snapshotsAt(wanted.map((r) => r.seq));
      const byRevision = new Map(snapshots.map((job) => [`${job.jobId} ${job.revision}`, job]));
      for (const row of wanted) {
        if (stream.failure) throw stream.failure();
        position.add(row.seq);
        const job = byRevision.get(`${row.jobId} ${row.revision}`);
        const kind = job && classifyChange(stream.filter, job);
        if (job && kind) yield { kind, job, position: position.clone() };
      }
      const last = rows[rows.length - 1];
      if (!last || rows.length < CATCH_UP_PAGE) return;
      after = last.seq;
    }
  }
}

/** An upper estimate of a job's encoded size: its free-text and result fields plus the fixed ones. */
function approximateSize(job: Job): number {
  const text = (v: string | null): number => (v === null ? 0 : Buffer.byteLength(v));
  return (
    256 +
    text(job.phase) +
    text(job.detail) +
    text(job.error) +
    text(job.cancelReason) +
    text(job.resource) +
    (job.result === null ? 0 : 2 * Buffer.byteLength(JSON.stringify(job.result)))
  );
}

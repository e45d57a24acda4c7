// The change-feed poll of this process: one feed read per interval (or right after a local commit that a
// WatchJobs stream waits for), one snapshot query for what its peers want, handed to each peer in seq order.
import type { Logger } from "pino";
import type { Job } from "../store/job.js";
import type { FeedEntry, JobStore } from "../store/store.js";
import { ChangeFeed } from "./change-feed.js";
import type { FeedPosition } from "./feed-position.js";

/** How long a missing change-feed seq is waited for before it counts as a rolled-back insert. */
const DEFAULT_GAP_TIMEOUT_MS = 5000;

/**
 * How long the change feed may fail before open watches are ended with UNAVAILABLE: their clients
 * resume on another replica (a healthy one, as health is NOT_SERVING here by then) instead of
 * waiting, unaware, for changes this replica cannot read.
 */
const DEFAULT_FEED_LOST_AFTER_MS = 5000;

/** Entries per change-feed query. */
const FEED_PAGE_SIZE = 500;

/** A failing poll is logged at warn at most this often (it is retried every interval). */
const POLL_WARN_EVERY_MS = 30_000;

/** How long close() waits for a poll in flight. */
const CLOSE_WAIT_MS = 2000;

/**
 * Polls started by nudge() are at least this far apart: under a burst of writes the feed is read at most
 * 200 times a second, each read taking every entry committed since the last one.
 */
const NUDGE_MIN_GAP_MS = 5;

/** Jobs published by this process are kept this long for the poll that reads their feed entries. */
const RECENT_KEEP_MS = 10_000;

/** One feed entry with the job as of it (undefined when not loaded: no peer wanted it, or it is gone). */
export interface FeedChange {
  seq: number;
  jobId: string;
  revision: number;
  job: Job | undefined;
}

/** What the poller feeds: the WatchJob hub and the WatchJobs set. */
export interface FeedPeer {
  /** Open watches fed by this peer (for the log when the feed is lost). */
  readonly openCount: number;
  /** The feed's position before the first poll. */
  startAt(position: FeedPosition): void;
  /** True when the change of `entry` may be news to one of the peer's watches: its snapshot is loaded. */
  wants(entry: FeedEntry): boolean;
  /** One committed batch, in seq order, and the feed's position after it. */
  receive(changes: readonly FeedChange[], position: FeedPosition): void;
  /** The feed could not be read for feedLostAfterMs: end every watch waiting on it with UNAVAILABLE. */
  feedLost(): void;
}

/** Dependencies of a FeedPoller. */
export interface FeedPollerDeps {
  store: Pick<JobStore, "latestSeq" | "readFeed" | "readFeedRanges" | "snapshotsAt"> &
    Partial<Pick<JobStore, "oldestOpenWriterMs">>;
  /** The poll interval. */
  pollMs: number;
  log: Logger;
  gapTimeoutMs?: number | undefined;
  /** See DEFAULT_FEED_LOST_AFTER_MS. */
  feedLostAfterMs?: number | undefined;
}

/**
 * Reads the shared change feed for every watch of this process: once per pollMs whatever the number of
 * watches, and soon after nudge() (a change this process committed that a WatchJobs stream needs with
 * its feed position). Loads the snapshots only of entries some peer wants, and takes jobs this process
 * published itself (remember()) from memory instead of the database.
 */
export class FeedPoller {
  private readonly feed: ChangeFeed;
  private readonly peers: FeedPeer[] = [];
  /** Jobs this process published, by "jobId revision", in two generations (see remember). */
  private recent = new Map<string, Job>();
  private older = new Map<string, Job>();
  private rotatedAt = Date.now();
  private running = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  /** A nudge came while a poll was in flight: poll again right after it. */
  private again = false;
  private lastPollAt = Number.NEGATIVE_INFINITY;
  private failingSince: number | undefined;
  private lastWarnAt = 0;

  constructor(private readonly deps: FeedPollerDeps) {
    this.feed = new ChangeFeed({
      store: deps.store,
      gapTimeoutMs: deps.gapTimeoutMs ?? DEFAULT_GAP_TIMEOUT_MS,
      pageSize: FEED_PAGE_SIZE,
      log: deps.log,
    });
  }

  /** Adds a peer; every peer gets every batch. */
  add(peer: FeedPeer): void {
    this.peers.push(peer);
  }

  /** Every seq the poll has seen (and handed to the peers). */
  get position(): FeedPosition {
    return this.feed.position;
  }

  /** Starts following the feed from its current end, then polls every pollMs until close(). */
  async start(): Promise<void> {
    if (this.running || this.closed) return;
    await this.feed.start();
    for (const peer of this.peers) peer.startAt(this.feed.position);
    this.running = true;
    this.schedule(this.deps.pollMs);
  }

  /** Stops polling; waits (up to CLOSE_WAIT_MS) for a poll in flight, so the store can be closed after. */
  async close(): Promise<void> {
    this.closed = true;
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    const polling = this.polling;
    if (!polling) return;
    // A database that stopped answering must not hold up the shutdown.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([polling, new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS)))]);
    clearTimeout(timer);
  }

  /**
   * A job this process committed: the poll that reads its feed entry takes the job from here, not from a
   * snapshot query. Kept at most RECENT_KEEP_MS (an entry the feed gave up on is never read).
   */
  remember(job: Job): void {
    const now = Date.now();
    if (now - this.rotatedAt >= RECENT_KEEP_MS) {
      this.older = this.recent;
      this.recent = new Map();
      this.rotatedAt = now;
    }
    this.recent.set(`${job.jobId} ${job.revision}`, job);
  }

  /** Polls soon (at most NUDGE_MIN_GAP_MS after the last poll began) instead of at the next interval. */
  nudge(): void {
    if (!this.running) return;
    if (this.polling) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.schedule(Math.max(0, this.lastPollAt + NUDGE_MIN_GAP_MS - performance.now()));
  }

  /**
   * Why this replica cannot serve watches, when its change feed has failed for longer than
   * feedLostAfterMs; undefined while the feed is read. A health condition.
   */
  feedFailure(): string | undefined {
    const since = this.failingSince;
    if (since === undefined || Date.now() - since < this.feedLostAfterMs) return undefined;
    return `the change feed could not be read for ${Math.round((Date.now() - since) / 1000)} s`;
  }

  private get feedLostAfterMs(): number {
    return this.deps.feedLostAfterMs ?? DEFAULT_FEED_LOST_AFTER_MS;
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.lastPollAt = performance.now();
      this.polling = this.poll().finally(() => {
        this.polling = undefined;
        const again = this.again;
        this.again = false;
        this.schedule(again ? NUDGE_MIN_GAP_MS : this.deps.pollMs);
      });
    }, delayMs);
    // Polling serves watchers; it must not be what keeps the process alive.
    this.timer.unref();
  }

  /** One poll: one feed query, plus one snapshot query when a peer wants a change not published here. Never throws. */
  private async poll(): Promise<void> {
    try {
      const batch = await this.feed.read();
      const known = new Map<number, Job>();
      const byRevision = new Map<string, Job>();
      // Who wants an entry is asked again after each snapshot query: a watch opened while one ran (a WatchJobs
      // stream registered at the position before this batch) wants entries nobody did before, and an entry
      // handed over without its snapshot is skipped by every peer, for good (found by test/guarantees).
      const asked = new Set<number>();
      for (;;) {
        const seqs: number[] = [];
        for (const entry of batch.entries) {
          if (asked.has(entry.seq) || !this.peers.some((peer) => peer.wants(entry))) continue;
          asked.add(entry.seq);
          const key = `${entry.jobId} ${entry.revision}`;
          const mine = this.recent.get(key) ?? this.older.get(key);
          if (mine) known.set(entry.seq, mine);
          else seqs.push(entry.seq);
        }
        if (seqs.length === 0) break;
        for (const job of await this.deps.store.snapshotsAt(seqs)) byRevision.set(`${job.jobId} ${job.revision}`, job);
      }
      const changes: FeedChange[] = batch.entries.map((e) => ({
        seq: e.seq,
        jobId: e.jobId,
        revision: e.revision,
        job: known.get(e.seq) ?? byRevision.get(`${e.jobId} ${e.revision}`),
      }));
      // Only now: a failed snapshot query leaves the entries to be read again next time.
      batch.commit();
      for (const e of batch.entries) this.recent.delete(`${e.jobId} ${e.revision}`);
      const position = this.feed.position;
      for (const peer of this.peers) peer.receive(changes, position);
      if (this.failingSince !== undefined) {
        this.deps.log.info({ failingForMs: Date.now() - this.failingSince }, "watch: change-feed poll recovered");
        this.failingSince = undefined;
      }
    } catch (err) {
      if (this.closed) return; // the store is being closed under the last poll
      this.failed(err);
    }
  }

  private failed(err: unknown): void {
    const now = Date.now();
    this.failingSince ??= now;
    if (now - this.lastWarnAt >= POLL_WARN_EVERY_MS) {
      this.lastWarnAt = now;
      this.deps.log.warn({ err }, "watch: change-feed poll failed; retrying every poll interval");
    }
    const open = this.peers.reduce((n, peer) => n + peer.openCount, 0);
    if (now - this.failingSince >= this.feedLostAfterMs && open > 0) {
      this.deps.log.warn({ watches: open }, "watch: change feed lost; ending open watches (UNAVAILABLE)");
      for (const peer of this.peers) peer.feedLost();
    }
  }
}

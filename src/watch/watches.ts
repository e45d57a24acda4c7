// Every watch of this process, assembled: the feed poller, and the two peers it feeds (the WatchJob hub
// and the WatchJobs set), with the one publish() a committed write calls.
import type { Logger } from "pino";
import { UnavailableError } from "../errors.js";
import type { Job } from "../store/job.js";
import type { JobStore } from "../store/store.js";
import { FeedPoller } from "./feed-poller.js";
import type { JobFeed, WatchHandle, WatchOptions, WatchSink } from "./job-feed.js";
import type { JobsEvent, JobsWatchOptions } from "./jobs-watch.js";
import { JobsWatches } from "./jobs-watch.js";
import { WatchHub } from "./watch-hub.js";

/** The default bookmark interval of WatchJob and WatchJobs. */
const DEFAULT_BOOKMARK_MS = 30_000;

/** Dependencies of Watches. */
export interface WatchesDeps {
  store: JobStore;
  /** Change-feed poll interval. */
  pollMs: number;
  log: Logger;
  /** How long a missing change-feed seq is waited for (default DEFAULT_GAP_TIMEOUT_MS). */
  gapTimeoutMs?: number;
  /** See DEFAULT_FEED_LOST_AFTER_MS. */
  feedLostAfterMs?: number;
  /** An idle watch gets a bookmark this often (default 30 s). */
  bookmarkMs?: number;
  /** A WatchJobs cursor older than this is OUT_OF_RANGE: the feed entries after it may be pruned. */
  maxCursorAgeMs?: number;
  /** Changes one WatchJobs stream may hold for a reader that does not read (default 10,000). */
  maxQueuedChanges?: number;
}

/**
 * The watch side of the server. publish() hands a committed change to the WatchJob hub at once and,
 * while WatchJobs streams are open, asks the poller for an early poll: a WatchJobs stream needs the
 * change's feed position for its cursor, and the poll that finds it takes the job from memory. Changes
 * committed by other replicas reach both peers through the poll, within pollMs.
 */
export class Watches implements JobFeed {
  /** WatchJob's fan-out. */
  readonly hub: WatchHub;
  /** WatchJobs' streams. */
  readonly sets: JobsWatches;
  private readonly poller: FeedPoller;

  constructor(private readonly deps: WatchesDeps) {
    this.hub = new WatchHub({ store: deps.store, log: deps.log });
    this.sets = new JobsWatches({
      store: deps.store,
      bookmarkMs: this.bookmarkMs,
      maxCursorAgeMs: deps.maxCursorAgeMs ?? 9 * 60_000,
      maxQueuedChanges: deps.maxQueuedChanges,
      // Another replica may be a poll ahead of this one; its cursors are not "from the future".
      aheadGraceMs: 3 * deps.pollMs + 500,
    });
    this.poller = new FeedPoller({
      store: deps.store,
      pollMs: deps.pollMs,
      log: deps.log,
      gapTimeoutMs: deps.gapTimeoutMs,
      feedLostAfterMs: deps.feedLostAfterMs,
    });
    this.poller.add(this.hub);
    this.poller.add(this.sets);
  }

  /** How long a watch stays quiet before it gets a bookmark. */
  get bookmarkMs(): number {
    return this.deps.bookmarkMs ?? DEFAULT_BOOKMARK_MS;
  }

  /** Open WatchJob streams. */
  get watcherCount(): number {
    return this.hub.watcherCount;
  }

  /** Open WatchJobs streams. */
  get jobsStreamCount(): number {
    return this.sets.streamCount;
  }

  /** Changes held in memory for all WatchJob watchers together; for tests and metrics. */
  get bufferedCount(): number {
    return this.hub.bufferedCount;
  }

  /** Aborted at shutdown, once every WatchJob has ended (see WatchHub.closing). */
  get closing(): AbortSignal {
    return this.hub.closing;
  }

  /** Starts the poll at the feed's current end. */
  start(): Promise<void> {
    return this.poller.start();
  }

  /** Stops the poll and ends every watch with UNAVAILABLE naming where to resume. */
  async close(): Promise<void> {
    const stopping = this.poller.close();
    this.hub.close();
    this.sets.endAll(
      () => new UnavailableError("server is shutting down: reconnect and resume with after_cursor"),
      true,
    );
    await stopping;
  }

  /** A health condition: why this replica cannot serve watches, or undefined. */
  feedFailure(): string | undefined {
    return this.poller.feedFailure();
  }

  /** A change committed through this process. */
  publish(job: Job): void {
    this.hub.publish(job);
    if (this.sets.streamCount === 0) return;
    this.poller.remember(job);
    this.poller.nudge();
  }

  /** What WatchJob sends, written to `sink` (see WatchHub.watch). */
  watch(jobId: string, opts: WatchOptions, sink: WatchSink): WatchHandle {
    return this.hub.watch(jobId, opts, sink);
  }

  /** What WatchJobs sends (see JobsWatches.watch). */
  watchJobs(opts: JobsWatchOptions): AsyncGenerator<JobsEvent> {
    return this.sets.watch(opts);
  }
}

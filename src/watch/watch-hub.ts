// The WatchJob hub: fans every job change out to the WatchJob streams of this process, from this
// process's own commits at once and from other replicas' commits through the feed poller (of which it
// is a peer, beside the WatchJobs set). Subscription, delivery and shutdown share the watcher table and
// its invariants (subscribe before reading, release exactly once); the queue and the poll live in their
// own files.
import { setMaxListeners } from "node:events";
import type { Logger } from "pino";
import { jobNotFound, UnavailableError } from "../errors.js";
import type { Job } from "../store/job.js";
import { isTerminal } from "../store/job.js";
import type { FeedEntry, JobStore } from "../store/store.js";
import type { FeedChange, FeedPeer } from "./feed-poller.js";
import type { WatchHandle, WatchOptions, WatchSink } from "./job-feed.js";
import { WatchQueue } from "./watch-queue.js";

/**
 * Transitions read per query. A job has at most four after its creation (RUNNING, cancel requested,
 * a terminal status, CANCELLED after a request), so this bound is never what stops a read.
 */
const MAX_TRANSITIONS_PER_READ = 16;

/** Watchers handed a change per turn of the event loop (see WatchHub.deliver). */
const DELIVERY_SLICE = 500;

/** A published change and how far its delivery got. */
interface Delivery {
  job: Job;
  /** The job's watchers when its delivery began; undefined until then. */
  watchers: Watcher[] | undefined;
  /** Index of the next watcher to hand it to. */
  next: number;
  /** Its message was prepared (mapped and encoded) for the watchers' sinks. */
  prepared: boolean;
}

/** The handle of a watch that never started (refused at once). */
const IDLE: WatchHandle = { resume: () => undefined };

/** Dependencies of a WatchHub. */
export interface WatchHubDeps {
  store: Pick<JobStore, "getJob" | "transitionsBetween">;
  log: Logger;
}

/** One open watch. */
interface Watcher {
  readonly jobId: string;
  readonly queue: WatchQueue;
  readonly sink: WatchSink;
  /** The revision a client would resume after if the stream broke now: the newest written to its stream. */
  resumeAfter: number;
  /** Bookmark interval; undefined: no bookmarks. */
  readonly quietMs: number | undefined;
  /** performance.now() of the last message written (see sweepBookmarks). */
  lastSentAt: number;
  /** A message is being prepared outside the hub's delivery (a fetched revision): the queue waits for it. */
  preparing: boolean;
  /** Ends the watch: OK (after a terminal revision) when `error` is undefined, else with the error. Once. */
  finish(error?: unknown): void;
}

/** The error that ends every watch at shutdown; names the revision to resume after. */
function shuttingDown(resumeAfter: number): UnavailableError {
  return new UnavailableError(`server is shutting down: reconnect and resume with after_revision=${resumeAfter}`);
}

/** The error that ends a watch whose missing revisions could not be read; retryable like a shutdown. */
function feedLost(resumeAfter: number): UnavailableError {
  return new UnavailableError(
    `lost the job's change feed (database unavailable): reconnect and resume with after_revision=${resumeAfter}`,
  );
}

/**
 * Fans job changes out to WatchJob watchers. publish() hands a change committed through this process to
 * its watchers at once; the feed poller hands it changes committed by other replicas (receive), loading
 * the snapshots only of jobs being watched. Each watcher orders what it gets by revision (see
 * WatchQueue): the same change from both sources is delivered once, and a revision that overtakes a
 * missing one waits for it.
 */
export class WatchHub implements FeedPeer {
  private readonly topics = new Map<string, Set<Watcher>>();
  /** Gap fetches in flight, by job and revision range. */
  private readonly fetches = new Map<string, Promise<Job[]>>();
  private count = 0;
  /** Published changes not yet handed to every watcher, oldest first (see deliver). */
  private published: Delivery[] = [];
  /** The "jobId revision" of each change in `published`: it is not published a second time (see publish). */
  private readonly pending = new Set<string>();
  /** A deliver() is scheduled. */
  private delivering = false;
  private closed = false;
  /** Watchers with a bookmark interval, swept by one timer (sweepBookmarks). */
  private readonly quiet = new Set<Watcher>();
  private bookmarkTimer: NodeJS.Timeout | undefined;
  private readonly closer = ((controller: AbortController) => {
    // Every stream waiting for a slow client to read listens to `closing` once (and removes its listener
    // when it stops waiting); their number is bounded by the stream limits, not by 10, so Node's
    // MaxListenersExceededWarning would only be noise.
    setMaxListeners(0, controller.signal);
    return controller;
  })(new AbortController());

  constructor(private readonly deps: WatchHubDeps) {}

  /** Open watches. */
  get watcherCount(): number {
    return this.count;
  }

  /**
   * Aborted by close(), once every open watch has ended. A WatchJob handler waiting for a slow client to take more ('drain')
   * listens to it, so at shutdown it stops waiting and pulls the UnavailableError that ends its watch.
   */
  get closing(): AbortSignal {
    return this.closer.signal;
  }

  /** Changes held in memory for all watchers together (bounded per watcher); for tests and metrics. */
  get bufferedCount(): number {
    let n = 0;
    for (const topic of this.topics.values()) for (const w of topic) n += w.queue.size;
    return n;
  }

  /** Ends every open watch with UNAVAILABLE naming the revision to resume after (shutdown). */
  close(): void {
    this.closed = true;
    // What was committed before the shutdown still reaches the watchers waiting for it.
    this.deliverAll();
    this.endAll((w) => shuttingDown(w.resumeAfter));
    // After the queues ended: a handler woken by this finds its watch's UnavailableError waiting.
    this.closer.abort();
  }

  /** FeedPeer: open watches. */
  get openCount(): number {
    return this.count;
  }

  /** FeedPeer: nothing to set up, each watcher starts from the job it read. */
  startAt(): void {}

  /** FeedPeer: an entry is wanted when some watcher of its job has not got that revision yet. */
  wants(entry: FeedEntry): boolean {
    const topic = this.topics.get(entry.jobId);
    if (topic === undefined || this.pending.has(`${entry.jobId} ${entry.revision}`)) return false;
    return this.wanted(topic, entry.revision);
  }

  /** FeedPeer: changes read from the feed are published like local ones, in revision order. */
  receive(changes: readonly FeedChange[]): void {
    const jobs: Job[] = [];
    for (const c of changes) if (c.job && this.topics.has(c.jobId)) jobs.push(c.job);
    for (const job of jobs.sort((a, b) => a.revision - b.revision)) this.publish(job);
  }

  /** FeedPeer: the feed is lost; every watch ends UNAVAILABLE naming the revision to resume after. */
  feedLost(): void {
    this.endAll((w) => feedLost(w.resumeAfter));
  }

  /** Ends every open watch with the error `why` makes for it (naming the revision to resume after). */
  private endAll(why: (w: Watcher) => Error): void {
    for (const topic of [...this.topics.values()]) for (const w of [...topic]) w.finish(why(w));
  }

  /**
   * A change committed through this process: reaches its watchers right after the current turn of the
   * event loop, not inside it, so the write that made it is answered first. With 10,000 watchers the
   * fan-out took the worker's ReportProgress to a p99 of 897 ms (bare grpc-js: 297 ms). Changes
   * published in one turn are delivered in the order they were published, so each watcher's order holds.
   * A change whose delivery is under way is not published again: the poll that reads its feed entry
   * while the slices are still going out finds watchers that have not got it yet, and its second
   * delivery (a snapshot read, a second encoding, 10,000 more offers that each drop it) delayed the
   * next change's first write by up to 200 ms at 10,000 watchers.
   */
  publish(job: Job): void {
    if (!this.topics.has(job.jobId)) return;
    const key = `${job.jobId} ${job.revision}`;
    if (this.pending.has(key)) return;
    this.pending.add(key);
    this.published.push({ job, watchers: undefined, next: 0, prepared: false });
    if (!this.delivering) {
      this.delivering = true;
      setImmediate(this.deliver);
    }
  }

  /**
   * Hands published changes to their watchers, DELIVERY_SLICE watchers per turn of the event loop: a
   * change to 10,000 watchers starts 10,000 writes, and started all at once their promises and buffers
   * were all alive together (the garbage collector took 40-47% of the fan-out's time); in slices each
   * slice's work is done and dead before the next, and other calls are served in between. A change
   * reaches every watcher before the next change does (its watchers are the topic as the first slice
   * found it; one who joined later read the job after the change was committed).
   */
  private readonly deliver = (): void => {
    let budget = DELIVERY_SLICE;
    while (this.published.length > 0 && budget > 0) {
      const d = this.published[0]!;
      d.watchers ??= [...(this.topics.get(d.job.jobId) ?? [])];
      if (!d.prepared) {
        // Mapped and encoded once, for all of the job's watchers, before the first is handed it; every
        // watcher's sink shares one message per job object, so the first one's prepare serves them all.
        const preparing = d.watchers[0]?.sink.prepare(d.job);
        d.prepared = true;
        if (preparing) {
          const go = (): void => void setImmediate(this.deliver);
          preparing.then(go, go);
          return;
        }
      }
      while (d.next < d.watchers.length && budget-- > 0) d.watchers[d.next++]!.queue.offer(d.job);
      if (d.next >= d.watchers.length) {
        this.published.shift();
        this.pending.delete(`${d.job.jobId} ${d.job.revision}`);
      }
    }
    if (this.published.length > 0) setImmediate(this.deliver);
    else this.delivering = false;
  };

  /** Hands every published change to its watchers now (at shutdown). */
  private deliverAll(): void {
    for (const d of this.published) {
      for (const w of d.watchers?.slice(d.next) ?? this.topics.get(d.job.jobId) ?? []) w.queue.offer(d.job);
    }
    this.published = [];
    this.pending.clear();
  }

  /**
   * Starts a WatchJob watch whose messages go to `sink`: the current job (after the status changes
   * missed since opts.afterRevision), then one job per change in revision order, then sink.end() after a
   * terminal status. Each change is written by the delivery that brings it, straight to the sink (no
   * promise, generator or timer per watcher per change); while the sink's stream is full, changes wait
   * in the watcher's WatchQueue (progress coalesced) until resume(). Ends with sink.fail(): NotFoundError
   * before anything is sent when the job is missing or not visible, UnavailableError at shutdown or when
   * the feed is lost (naming the revision to resume after), the signal's reason when it aborts.
   */
  watch(jobId: string, opts: WatchOptions, sink: WatchSink): WatchHandle {
    const after = opts.afterRevision && opts.afterRevision > 0 ? opts.afterRevision : 0;
    if (this.closed) {
      sink.fail(shuttingDown(after));
      return IDLE;
    }
    if (opts.signal.aborted) {
      sink.fail(opts.signal.reason);
      return IDLE;
    }
    // Subscribe before reading the job, so a change committed in between is held, not missed.
    const watcher = this.subscribe(jobId, after, opts, sink);
    this.open(watcher, opts).catch((err: unknown) => watcher.finish(err));
    return { resume: () => this.resume(watcher) };
  }

  /** The stream drained: write what waits (unless a message being prepared must go first). */
  private resume(w: Watcher): void {
    if (!w.preparing) w.queue.resume();
  }

  /** Reads the job, writes what the client is missing, then lets the queue push live changes. */
  private async open(w: Watcher, opts: WatchOptions): Promise<void> {
    const { queue, sink, jobId } = w;
    const after = w.resumeAfter;
    const read = await queue.until(this.deps.store.getJob(jobId, opts.visibleTo));
    if (!read || !opts.canSee(read)) throw jobNotFound(jobId);
    // A copy: the store hands out the same object while the job is unchanged (read-batch.ts), and the
    // message prepared for an object keeps the estimate made when it was first prepared; a watch that
    // opens now must carry today's estimate.
    const current = { ...read };

    const first: Job[] = [];
    if (after < current.revision) {
      if (after > 0 && current.revision > after + 1) {
        first.push(...(await queue.until(this.missedTransitions(jobId, after, current.revision))));
      }
      first.push(current);
    }
    // Everything after the current revision comes from the queue (held since subscribing).
    queue.start(current.revision);
    let more = true;
    for (const job of first) {
      await queue.until(sink.prepare(job) ?? Promise.resolve());
      queue.throwIfEnded();
      more = this.write(w, job);
    }
    if (isTerminal(current.status)) {
      w.finish();
      return;
    }
    queue.consume((job) => this.take(w, job), !more);
  }

  /** The queue's consumer: writes an accepted change, preparing its message first if no delivery did. */
  private take(w: Watcher, job: Job): boolean {
    const preparing = w.sink.prepare(job);
    if (preparing === undefined) return this.write(w, job);
    // Rare: a revision read from the store for a gap, which no delivery prepared. The queue waits.
    w.preparing = true;
    preparing.then(
      () => {
        w.preparing = false;
        if (!w.queue.ended && this.write(w, job)) w.queue.resume();
      },
      (err: unknown) => w.finish(err),
    );
    return false;
  }

  /** Writes one change to the watcher's stream; false when the stream is full (or the watch is over). */
  private write(w: Watcher, job: Job): boolean {
    w.resumeAfter = job.revision;
    w.lastSentAt = performance.now();
    const more = w.sink.send(job);
    if (!isTerminal(job.status)) return more;
    w.finish();
    return false;
  }

  /**
   * Bookmarks: one timer for the hub, not one per watcher. Every tick, a watcher whose stream has had no
   * message for its quietMs (and is not full) gets one naming the newest revision sent.
   */
  private readonly sweepBookmarks = (): void => {
    const now = performance.now();
    for (const w of this.quiet) {
      if (w.quietMs === undefined || w.preparing || w.queue.paused || now - w.lastSentAt < w.quietMs) continue;
      w.lastSentAt = now;
      if (!w.sink.bookmark(w.resumeAfter)) w.queue.pause();
    }
  };

  private watchQuiet(w: Watcher): void {
    if (w.quietMs === undefined) return;
    this.quiet.add(w);
    if (this.bookmarkTimer !== undefined) return;
    // A tenth of the interval: a bookmark comes 1.0-1.1 intervals after the last message.
    this.bookmarkTimer = setInterval(this.sweepBookmarks, Math.max(5, Math.min(1000, Math.floor(w.quietMs / 10))));
    this.bookmarkTimer.unref();
  }

  private unwatchQuiet(w: Watcher): void {
    if (!this.quiet.delete(w) || this.quiet.size > 0) return;
    clearInterval(this.bookmarkTimer);
    this.bookmarkTimer = undefined;
  }

  /**
   * The snapshots in (after, current) at which the status or cancel flag changed, so a resuming client
   * sees every transition it missed: read from the transitions the store marks at write time, so the
   * cost is the job's few status changes, not the thousands of progress reports in between.
   */
  private async missedTransitions(jobId: string, after: number, current: number): Promise<Job[]> {
    return this.fetchBetween(jobId, after, current);
  }

  /**
   * The status transitions in (afterRevision, beforeRevision), shared by the watchers of a job that ask
   * the same question at the same time (a resume storm after a restart, or a gap all of them see): one
   * bounded query, not one per watcher. A WatchQueue fills a gap with these too: the progress-only
   * revisions in between are the ones a slow reader may have coalesced anyway.
   */
  private fetchBetween(jobId: string, afterRevision: number, beforeRevision: number): Promise<Job[]> {
    const key = `${jobId} ${afterRevision} ${beforeRevision}`;
    let fetch = this.fetches.get(key);
    if (!fetch) {
      fetch = this.deps.store
        .transitionsBetween(jobId, afterRevision, beforeRevision, MAX_TRANSITIONS_PER_READ)
        .finally(() => {
          this.fetches.delete(key);
        });
      this.fetches.set(key, fetch);
    }
    // Each watcher sorts and filters its own copy.
    return fetch.then((jobs) => [...jobs]);
  }

  private subscribe(jobId: string, after: number, opts: WatchOptions, sink: WatchSink): Watcher {
    let topic = this.topics.get(jobId);
    if (!topic) {
      topic = new Set();
      this.topics.set(jobId, topic);
    }
    const { signal } = opts;
    const queue = new WatchQueue(
      (afterRevision, beforeRevision) => this.fetchBetween(jobId, afterRevision, beforeRevision),
      (err) => {
        this.deps.log.warn({ err, jobId }, "watch: cannot read missing revisions; ending the watch");
        watcher.finish(feedLost(watcher.resumeAfter));
      },
    );
    const onAbort = (): void =>
      watcher.finish(signal.reason ?? new DOMException("This operation was aborted", "AbortError"));
    let finished = false;
    const watcher: Watcher = {
      jobId,
      queue,
      sink,
      resumeAfter: after,
      quietMs: opts.quietMs,
      lastSentAt: performance.now(),
      preparing: false,
      finish: (error?: unknown) => {
        if (finished) return;
        finished = true;
        signal.removeEventListener("abort", onAbort);
        this.unwatchQuiet(watcher);
        const t = this.topics.get(jobId);
        if (t?.delete(watcher)) this.count--;
        if (t && t.size === 0) this.topics.delete(jobId);
        // Drops what the queue holds; a read in flight (until) rejects with the same error.
        queue.end(() => error ?? shuttingDown(watcher.resumeAfter));
        if (error === undefined) sink.end();
        else sink.fail(error);
      },
    };
    topic.add(watcher);
    this.count++;
    this.watchQuiet(watcher);
    signal.addEventListener("abort", onAbort, { once: true });
    return watcher;
  }

  /** True when some watcher of the topic has not got `revision` yet. */
  private wanted(topic: Set<Watcher>, revision: number): boolean {
    for (const w of topic) {
      const have = w.queue.revision;
      if (have === undefined || have < revision) return true;
    }
    return false;
  }
}

// One watcher's buffer of job changes: revision order, no duplicates, gaps filled from the store, and
// progress-only changes coalesced while its stream cannot take more, so a slow reader holds a handful of
// items at most. Changes are pushed to the watcher's consumer as they are accepted: no promise per change.

import type { Job } from "../store/job.js";
import { sameState } from "../store/job.js";

/** Loads the job as of each revision in (afterRevision, beforeRevision), in order. */
export type FetchBetween = (afterRevision: number, beforeRevision: number) => Promise<Job[]>;

/** Makes the error a failed queue throws, when it is thrown (so it can name the state at that moment). */
export type ErrorFactory = () => unknown;

/** A change waiting for its predecessors; `from` is the lowest revision it stands for (older ones coalesced into it). */
interface Held {
  job: Job;
  from: number;
}

/** Process-wide counts the metrics read: progress-only changes a slow reader never saw (coalesced away). */
export const watchQueueCounters = { coalesced: 0 };

/** Takes an accepted change; false when it can take no more until resume() (its stream's buffer is full). */
export type Consumer = (job: Job) => boolean;

/**
 * Orders what one watcher receives. Changes arrive from two sources in any order and any number of
 * times (this process's commits, the change-feed poller); `offer` accepts revision N only after N-1,
 * fetching missing revisions from the store when a later one arrives first, and drops any revision
 * already accepted. An accepted change goes straight to the consumer while it takes more; once it says
 * it cannot, changes wait until resume(), and while they wait a change with the same status and cancel
 * flag as the newest waiting one replaces it, so the queue holds at most one item per status transition
 * of the job's lifecycle (a handful), however many progress reports come. A status change is never
 * coalesced away.
 */
export class WatchQueue {
  /** Highest revision accepted; undefined until start(). */
  private highest: number | undefined;
  /** Arrived ahead of a missing predecessor (or before start), sorted by revision. */
  private held: Held[] = [];
  /** Accepted, waiting for the consumer to take more. */
  private queue: Job[] = [];
  /** A fetch of missing revisions is in flight; offers wait in `held` meanwhile so order holds. */
  private draining = false;
  /** Revisions up to this one were fetched already: what the store did not have is gone (pruned), don't ask again. */
  private fetchedThrough = 0;
  /** Where accepted changes go; none yet: they wait in `queue`. */
  private consumer: Consumer | undefined;
  /** The consumer said it can take no more; changes wait until resume(). */
  private isPaused = false;
  /** Inside flush(): a resume() from the consumer itself does not start a second one. */
  private flushing = false;
  private readonly interrupts = new Set<(err: unknown) => void>();
  private failure: ErrorFactory | undefined;

  constructor(
    private readonly fetchBetween: FetchBetween,
    /** Called (once) when fetching missing revisions fails; the owner decides how the watch ends. */
    private readonly onFetchError: (err: unknown) => void,
  ) {}

  /** The highest revision accepted so far, or undefined before start(). */
  get revision(): number | undefined {
    return this.highest;
  }

  /** Items held in memory (waiting for the reader or for a predecessor). */
  get size(): number {
    return this.queue.length + this.held.length;
  }

  /** True once end() was called. */
  get ended(): boolean {
    return this.failure !== undefined;
  }

  /** Throws the end error once ended (a reader between items checks this before going on). */
  throwIfEnded(): void {
    if (this.failure) throw this.failure();
  }

  /** Starts accepting changes after `revision` (the state the reader already has); earlier offers were held. */
  start(revision: number): void {
    if (this.highest !== undefined || this.ended) return;
    this.highest = revision;
    void this.drain();
  }

  /** A change of the job, from any source, in any order, possibly again. */
  offer(job: Job): void {
    if (this.ended) return;
    if (this.highest !== undefined && job.revision <= this.highest) return;
    // The usual case, the next revision with nothing held: accepted here, without drain()'s promise
    // (one per watcher per change is what a fan-out to thousands of watchers pays for).
    if (this.held.length === 0 && !this.draining && this.highest !== undefined && job.revision === this.highest + 1) {
      this.accept(job);
      return;
    }
    this.hold(job);
    // Runs synchronously up to its first await: a change that needs no fetch is accepted at once.
    void this.drain();
  }

  /** Starts pushing accepted changes to `consumer` (those waiting first, in order); `paused`: not before resume(). */
  consume(consumer: Consumer, paused = false): void {
    this.consumer = consumer;
    this.isPaused = paused;
    this.flush();
  }

  /** True while the consumer cannot take more (changes wait, coalescing). */
  get paused(): boolean {
    return this.isPaused;
  }

  /** The consumer is full (something else filled its stream): changes wait until resume(). */
  pause(): void {
    this.isPaused = true;
  }

  /** The consumer can take more again (its stream drained): hands it what waits, in order. */
  resume(): void {
    this.isPaused = false;
    this.flush();
  }

  /** Hands waiting changes to the consumer until it is full or none is left. */
  private flush(): void {
    if (this.flushing || this.consumer === undefined) return;
    this.flushing = true;
    try {
      while (!this.isPaused && this.queue.length > 0) {
        // The consumer may end the queue (a terminal change ends the watch): no consumer then.
        const consumer = this.consumer;
        if (consumer === undefined) break;
        if (!consumer(this.queue.shift() as Job)) this.isPaused = true;
      }
    } finally {
      this.flushing = false;
    }
  }

  /** `promise`, but rejected with the end error as soon as the queue ends (the work itself is not cancelled). */
  until<T>(promise: Promise<T>): Promise<T> {
    if (this.failure) return Promise.reject(this.failure());
    return new Promise<T>((resolve, reject) => {
      const interrupt = (err: unknown): void => reject(err);
      this.interrupts.add(interrupt);
      promise.then(
        (value) => {
          this.interrupts.delete(interrupt);
          resolve(value);
        },
        (err: unknown) => {
          this.interrupts.delete(interrupt);
          reject(err);
        },
      );
    });
  }

  /** Ends the queue: drops everything held; until() rejects with makeError(). Idempotent. */
  end(makeError: ErrorFactory): void {
    if (this.failure) return;
    this.failure = makeError;
    this.held = [];
    this.queue = [];
    this.consumer = undefined;
    const interrupts = [...this.interrupts];
    this.interrupts.clear();
    if (interrupts.length > 0) {
      const err = makeError();
      for (const interrupt of interrupts) interrupt(err);
    }
  }

  /** Inserts into `held` in revision order, coalescing a progress-only change that directly follows the newest held one. */
  private hold(job: Job): void {
    const held = this.held;
    const last = held.at(-1);
    if (!last || job.revision > last.job.revision) {
      if (last && job.revision === last.job.revision + 1 && sameState(last.job, job)) {
        // A progress-only successor: it replaces the newest held change, which it stands for from now on.
        held[held.length - 1] = { job, from: last.from };
      } else {
        held.push({ job, from: job.revision });
      }
      return;
    }
    // Out of order (a later revision came first from the other source): rare, insert in place.
    const at = held.findIndex((h) => h.job.revision >= job.revision);
    const there = held[at];
    if (there && there.job.revision === job.revision) return;
    if (there && job.revision >= there.from) return; // already covered by a coalesced item
    held.splice(at, 0, { job, from: job.revision });
  }

  /** Moves held changes to the queue in revision order, fetching any revisions missing in between. */
  private async drain(): Promise<void> {
    if (this.draining || this.highest === undefined) return;
    this.draining = true;
    try {
      while (!this.ended && this.held.length > 0) {
        const first = this.held[0]!;
        const highest: number = this.highest;
        if (first.job.revision <= highest) {
          this.held.shift();
          continue;
        }
        if (first.from <= highest + 1 || first.from <= this.fetchedThrough) {
          this.held.shift();
          this.accept(first.job);
          continue;
        }
        // Revision N is committed only after N-1, so the ones between are readable now.
        const target = first.from;
        const missing = await this.fetchBetween(highest, target);
        if (this.ended) return;
        missing.sort((a, b) => a.revision - b.revision);
        for (const job of missing) {
          if (job.revision > this.highest && job.revision < target) this.accept(job);
        }
        this.fetchedThrough = Math.max(this.fetchedThrough, target);
      }
    } catch (err) {
      if (!this.ended) this.onFetchError(err);
    } finally {
      this.draining = false;
    }
  }

  /** Hands a change to the consumer, or queues it, coalescing with the newest waiting one when only progress differs. */
  private accept(job: Job): void {
    this.highest = job.revision;
    const consumer = this.consumer;
    if (consumer !== undefined && !this.isPaused && this.queue.length === 0 && !this.flushing) {
      if (!consumer(job)) this.isPaused = true;
      return;
    }
    const last = this.queue.at(-1);
    if (last && sameState(last, job)) {
      this.queue[this.queue.length - 1] = job;
      watchQueueCounters.coalesced++;
    } else this.queue.push(job);
    this.flush();
  }
}

// One watcher's buffer of job changes: revision order, no duplicates, gaps filled from the store, and
// progress-only changes coalesced so a reader that does not pull holds a handful of items at most.
import { sameState } from "../store/job.js";
import type { Job } from "../store/job.js";

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

/**
 * Orders what one watcher receives. Changes arrive from two sources in any order and any number of
 * times (this process's commits, the change-feed poller); `offer` accepts revision N only after N-1,
 * fetching missing revisions from the store when a later one arrives first, and drops any revision
 * already accepted. Accepted changes wait in a queue until `next` takes them; while they wait, a change
 * with the same status and cancel flag as the newest waiting one replaces it, so the queue holds at most
 * one item per status transition of the job's lifecycle (a handful), however many progress reports come.
 */
export class WatchQueue {
  /** Highest revision accepted; undefined until start(). */
  private highest: number | undefined;
  /** Arrived ahead of a missing predecessor (or before start), sorted by revision. */
  private held: Held[] = [];
  /** Accepted, waiting for the reader. */
  private queue: Job[] = [];
  /** A fetch of missing revisions is in flight; offers wait in `held` meanwhile so order holds. */
  private draining = false;
  /** Revisions up to this one were fetched already: what the store did not have is gone (pruned), don't ask again. */
  private fetchedThrough = 0;
  private waiter: { resolve(job: Job | undefined): void; reject(err: unknown): void } | undefined;
  /** Ends a wait of next(quietMs) with undefined; one per queue, re-armed when a wait starts. */
  private quietTimer: NodeJS.Timeout | undefined;
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

  /**
   * The next change in revision order; waits for one. Rejects with the end error once ended. With
   * `quietMs`, a wait that sees no change for that long resolves with undefined instead (the watch sends a
   * bookmark then): one timer per queue, re-armed when each wait starts, so a fan-out to thousands of
   * watchers makes no timer or extra promise per change.
   */
  next(): Promise<Job>;
  next(quietMs: number): Promise<Job | undefined>;
  next(quietMs?: number): Promise<Job | undefined> {
    if (this.failure) return Promise.reject(this.failure());
    const job = this.queue.shift();
    if (job) return Promise.resolve(job);
    return new Promise<Job | undefined>((resolve, reject) => {
      this.waiter = { resolve, reject };
      if (quietMs === undefined) return;
      if (this.quietTimer === undefined) {
        this.quietTimer = setTimeout(() => this.quiet(), quietMs);
      } else this.quietTimer.refresh();
    });
  }

  /** The quiet timer fired: a reader still waiting gets undefined (a change that came meanwhile took the waiter). */
  private quiet(): void {
    const waiter = this.waiter;
    if (waiter === undefined) return;
    this.waiter = undefined;
    waiter.resolve(undefined);
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

  /** Ends the queue: drops everything held; a waiting or later next() rejects with makeError(). Idempotent. */
  end(makeError: ErrorFactory): void {
    if (this.failure) return;
    this.failure = makeError;
    clearTimeout(this.quietTimer);
    this.held = [];
    this.queue = [];
    const waiter = this.waiter;
    this.waiter = undefined;
    const interrupts = [...this.interrupts];
    this.interrupts.clear();
    if (waiter || interrupts.length > 0) {
      const err = makeError();
      waiter?.reject(err);
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

  /** Hands a change to a waiting reader, or queues it, coalescing with the newest waiting one when only progress differs. */
  private accept(job: Job): void {
    this.highest = job.revision;
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter.resolve(job);
      return;
    }
    const last = this.queue.at(-1);
    if (last && sameState(last, job)) {
      this.queue[this.queue.length - 1] = job;
      watchQueueCounters.coalesced++;
    } else this.queue.push(job);
  }
}

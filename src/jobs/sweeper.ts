// Periodic housekeeping: cancels jobs whose worker never confirmed, fails silent jobs, removes expired ones.
import type { Logger } from "pino";
import type { Job } from "../store/job.js";
import type { JobStore } from "../store/store.js";
import type { JobPublisher } from "../watch/job-feed.js";
import { publishingStore } from "../watch/publishing-store.js";

/** How the sweeper treats jobs; every figure in milliseconds. */
export interface SweeperSettings {
  /** A RUNNING job with cancel_requested for this long becomes CANCELLED (JOBWATCH_CANCEL_GRACE). */
  cancelGraceMs: number;
  /** A RUNNING job with no heartbeat for this long becomes FAILED (JOBWATCH_STALE_AFTER). */
  staleAfterMs: number;
  /** Finished jobs are deleted this long after they finished (JOBWATCH_RETENTION). */
  retentionMs: number;
  /** How often retention runs after the run at start-up (JOBWATCH_SWEEP_INTERVAL). */
  sweepIntervalMs: number;
}

/** What the Sweeper needs: its settings and where it reads and reports. */
export interface SweeperDeps extends SweeperSettings {
  store: Pick<JobStore, "cancelUnconfirmed" | "failStaleJobs" | "deleteExpired" | "pruneFeed">;
  /** Where moved jobs go (the store publishes them), so this process's watchers see them at once. */
  hub: JobPublisher;
  log: Logger;
  /** The clock, for tests; defaults to Date.now. */
  now?: () => number;
}

/** Rows deleted per retention statement: small enough that no statement holds locks for long on MySQL. */
const RETENTION_BATCH = 500;
/** Feed-only events are kept this long, well beyond any poll interval, so a lagging replica still reads them. */
export const FEED_KEEP_MS = 10 * 60 * 1000;
/** setTimeout's largest delay; longer ones would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** How often feed-only events are pruned. */
const PRUNE_EVERY_MS = 60 * 1000;
/** The transition sweep runs at least this often (and faster for short stale or grace periods). */
const MAX_TRANSITION_PERIOD_MS = 5000;
/** ... but never more often than this, however short the settings. */
const MIN_TRANSITION_PERIOD_MS = 50;

/**
 * Runs the sweepers on timers. Safe with several replicas on one database: every move is a conditional
 * update in the store, so a job is moved once and each move gets its own revision. Errors are logged
 * and the next run tries again; nothing here can crash the server.
 */
export class Sweeper {
  private readonly store: SweeperDeps["store"];
  private readonly log: Logger;
  private readonly settings: SweeperSettings;
  private readonly now: () => number;
  /** How often cancelUnconfirmed and failStaleJobs run. */
  readonly transitionPeriodMs: number;
  private transitionTimer: NodeJS.Timeout | undefined;
  private retentionTimer: NodeJS.Timeout | undefined;
  private running = new Set<Promise<unknown>>();
  private stopped = true;
  private lastPruneAt = Number.NEGATIVE_INFINITY;

  constructor(deps: SweeperDeps) {
    this.store = publishingStore(deps.store, deps.hub);
    this.log = deps.log.child({ component: "sweeper" });
    this.settings = {
      cancelGraceMs: deps.cancelGraceMs,
      staleAfterMs: deps.staleAfterMs,
      retentionMs: deps.retentionMs,
      sweepIntervalMs: deps.sweepIntervalMs,
    };
    this.now = deps.now ?? Date.now;
    // A quarter of the shortest period bounds how late a move can be to 25% of that period.
    const quarter = Math.min(deps.staleAfterMs, deps.cancelGraceMs) / 4;
    this.transitionPeriodMs = Math.max(MIN_TRANSITION_PERIOD_MS, Math.min(MAX_TRANSITION_PERIOD_MS, quarter));
  }

  /** Starts the timers; retention runs once right away (not awaited: a big backlog must not delay start-up). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.track(this.sweepRetention());
    this.scheduleTransitions();
    this.scheduleRetention();
  }

  /** Stops the timers and waits for a run in progress, so the store can be closed after. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.transitionTimer);
    clearTimeout(this.retentionTimer);
    await Promise.allSettled([...this.running]);
  }

  /** One transition sweep: unconfirmed cancellations, stale jobs, and (at most once a minute) the feed. */
  async sweepTransitions(): Promise<Job[]> {
    const moved: Job[] = [];
    const now = this.now();
    try {
      const cancelled = await this.store.cancelUnconfirmed(now - this.settings.cancelGraceMs);
      this.logMoves(cancelled, "cancelled: the worker never confirmed the cancellation");
      moved.push(...cancelled);
    } catch (err) {
      this.log.error({ err }, "cancel-grace sweep failed; retrying next period");
    }
    try {
      const failed = await this.store.failStaleJobs(now - this.settings.staleAfterMs);
      this.logMoves(failed, "failed: the worker stopped reporting");
      moved.push(...failed);
    } catch (err) {
      this.log.error({ err }, "stale-job sweep failed; retrying next period");
    }
    if (now - this.lastPruneAt >= PRUNE_EVERY_MS) {
      try {
        const pruned = await this.store.pruneFeed(now - FEED_KEEP_MS);
        this.lastPruneAt = now;
        if (pruned > 0) this.log.debug({ pruned }, "pruned feed-only events");
      } catch (err) {
        this.log.error({ err }, "feed pruning failed; retrying next period");
      }
    }
    return moved;
  }

  /** One retention sweep: deletes expired finished jobs in batches until a batch comes back short. */
  async sweepRetention(): Promise<number> {
    const before = this.now() - this.settings.retentionMs;
    let total = 0;
    try {
      for (;;) {
        const deleted = await this.store.deleteExpired(before, RETENTION_BATCH);
        total += deleted;
        if (deleted < RETENTION_BATCH || this.stopped) break;
      }
      if (total > 0) this.log.info({ deleted: total, before: new Date(before).toISOString() }, "removed expired jobs");
    } catch (err) {
      this.log.error({ err, deletedSoFar: total }, "retention sweep failed; retrying next interval");
    }
    return total;
  }

  private logMoves(jobs: Job[], what: string): void {
    for (const job of jobs) {
      this.log.info({ jobId: job.jobId, revision: job.revision }, what);
    }
  }

  private track(run: Promise<unknown>): void {
    this.running.add(run);
    void run.finally(() => this.running.delete(run));
  }

  private scheduleTransitions(): void {
    if (this.stopped) return;
    this.transitionTimer = setTimeout(() => {
      const run = this.sweepTransitions();
      this.track(run);
      void run.finally(() => this.scheduleTransitions());
    }, this.transitionPeriodMs);
    this.transitionTimer.unref();
  }

  private scheduleRetention(): void {
    if (this.stopped) return;
    this.retentionTimer = setTimeout(
      () => {
        const run = this.sweepRetention();
        this.track(run);
        void run.finally(() => this.scheduleRetention());
      },
      Math.min(this.settings.sweepIntervalMs, MAX_TIMER_MS),
    );
    this.retentionTimer.unref();
  }
}

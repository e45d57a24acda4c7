// One WatchJobs stream's queue: the changes waiting for its reader, in feed order, progress-only ones
// coalesced, bounded (a reader that falls too far behind is ended RESOURCE_EXHAUSTED).
import { ResourceExhaustedError } from "../errors.js";
import type { Job } from "../store/job.js";
import { sameState } from "../store/job.js";
import type { FeedPosition } from "./feed-position.js";
import type { ChangeKind, JobsFilter } from "./jobs-filter.js";
import { classifyChange } from "./jobs-filter.js";

/** A change waiting for its reader, with the feed position right after it. */
export interface Pending {
  seq: number;
  kind: ChangeKind;
  job: Job;
  position: FeedPosition;
}

/** One open stream: its filter and the changes waiting for its reader, progress-only ones coalesced. */
export class JobsStream {
  private items: (Pending | null)[] = [];
  private head = 0;
  private held = 0;
  /** Index in `items` of each job's newest waiting change. */
  private readonly newest = new Map<string, number>();
  private wake: (() => void) | undefined;
  failure: (() => unknown) | undefined;
  /**
   * What the client already has beyond the poll's position: the cursor it resumed from, or the feed
   * entries its snapshot already shows. A change it covers is not sent.
   */
  base: FeedPosition | undefined;

  constructor(
    readonly filter: JobsFilter,
    private readonly maxQueued: number,
  ) {}

  /** A change from the feed poll; `position` is shared, not to be modified. */
  offer(seq: number, job: Job, position: FeedPosition): void {
    if (this.failure) return;
    if (this.base?.covers(seq)) return;
    const kind = classifyChange(this.filter, job);
    if (kind === undefined) return;
    const at = this.newest.get(job.jobId);
    const previous = at === undefined ? undefined : this.items[at];
    // A progress-only change replaces the waiting one of the same job; the newer one goes to the end, so
    // cursors stay in feed order and none is sent twice.
    if (previous && previous.kind === kind && sameState(previous.job, job)) {
      this.items[at as number] = null;
      this.held--;
    }
    this.items.push({ seq, kind, job, position });
    this.newest.set(job.jobId, this.items.length - 1);
    this.held++;
    if (this.held > this.maxQueued) {
      this.end(
        () =>
          new ResourceExhaustedError(
            `the stream fell more than ${this.maxQueued} changes behind: read faster, or reconnect ` +
              "with after_cursor set to the last cursor you received",
            "watch_jobs.queued_changes",
          ),
      );
    }
    this.wake?.();
  }

  /** The next waiting change, or undefined when none came within `timeoutMs`; throws once ended. */
  async next(timeoutMs: number, signal: AbortSignal): Promise<Pending | undefined> {
    for (;;) {
      if (this.failure) throw this.failure();
      signal.throwIfAborted();
      while (this.head < this.items.length) {
        const item = this.items[this.head];
        this.items[this.head] = null;
        this.head++;
        if (!item) continue;
        this.held--;
        if (this.newest.get(item.job.jobId) === this.head - 1) this.newest.delete(item.job.jobId);
        this.compact();
        return item;
      }
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await new Promise<boolean>((resolve) => {
        const done = (value: boolean): void => {
          clearTimeout(timer);
          signal.removeEventListener("abort", onAbort);
          this.wake = undefined;
          resolve(value);
        };
        const onAbort = (): void => done(false);
        this.wake = () => done(false);
        timer = setTimeout(() => done(true), timeoutMs);
        signal.addEventListener("abort", onAbort, { once: true });
      });
      if (timedOut && this.head >= this.items.length && !this.failure) return undefined;
    }
  }

  /** Ends the stream: its reader throws what `failure` makes. */
  end(failure: () => unknown): void {
    if (this.failure) return;
    this.failure = failure;
    this.items = [];
    this.head = 0;
    this.held = 0;
    this.newest.clear();
    this.wake?.();
  }

  /** Drops the consumed front of the array once it is most of it. */
  private compact(): void {
    if (this.head < 1024 || this.head * 2 < this.items.length) return;
    this.items = this.items.slice(this.head);
    for (const [jobId, i] of this.newest) this.newest.set(jobId, i - this.head);
    this.head = 0;
  }
}

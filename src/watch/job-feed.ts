// The watch fan-out as the rest of the server uses it: publish a changed job, follow one job's changes.
import type { Job } from "../store/job.js";
import type { JobsEvent, JobsWatchOptions } from "./jobs-watch.js";

/** What a watch needs besides the job id. */
export interface WatchOptions {
  /** The revision the client already has (resume); unset or 0 = none. */
  afterRevision?: number | undefined;
  /** Client cancel or deadline: ends the watch and releases it. */
  signal: AbortSignal;
  /** Visibility: false makes the job answer exactly like a missing one. */
  canSee(job: Job): boolean;
  /**
   * The only user whose job the caller may see, if the caller is limited to one: the job is read with
   * the owner in the query, so another user's job is refused before its large columns are decoded.
   */
  visibleTo?: string | undefined;
  /** When set, a watch that sees no change for this long yields undefined (the stream sends a bookmark). */
  quietMs?: number | undefined;
}

/** Hands a job change committed through this process to its watchers. */
export interface JobPublisher {
  /** Hands a changed job to this process's watchers at once (other replicas read it from the change feed). */
  publish(job: Job): void;
}

/** The watches as handlers use them (Watches implements it): publish what changed, follow one job. */
export interface JobFeed extends JobPublisher {
  /**
   * The job's revisions in order; throws NotFoundError; ends after a terminal status. With
   * `opts.quietMs`, also undefined each time the job stayed quiet that long.
   */
  watch(jobId: string, opts: WatchOptions & { quietMs: number }): AsyncGenerator<Job | undefined>;
  watch(jobId: string, opts: WatchOptions): AsyncGenerator<Job>;
  /** What WatchJobs sends: snapshot, synced, then the changes of every job matching a filter (see JobsWatches). */
  watchJobs(opts: JobsWatchOptions): AsyncGenerator<JobsEvent>;
  /** How long a watch stays quiet before it gets a bookmark. */
  readonly bookmarkMs: number;
  /** Aborted at shutdown, once every watch has ended: a handler waiting for a slow client stops waiting. */
  readonly closing: AbortSignal;
}

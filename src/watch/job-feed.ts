// The watch fan-out as the rest of the server uses it: publish a changed job, follow one job's changes
// (pushed to a sink the server's stream provides), follow a set of jobs.
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
  /** When set, a watch that sends nothing for this long sends a bookmark. */
  quietMs?: number | undefined;
}

/**
 * Where a WatchJob watch writes: the server's stream. The hub knows no gRPC; the sink makes and writes
 * the messages. Every method is called synchronously from the hub's delivery, so none may wait.
 */
export interface WatchSink {
  /**
   * undefined when send(job) can write `job` now; otherwise a promise that settles once it can (the
   * job's message is made once per job object and shared by every sink: the hub calls this once per
   * change before handing it to the job's watchers).
   */
  prepare(job: Job): Promise<void> | undefined;
  /** Writes the job's message; false when the stream's buffer is full: the hub writes no more until resume(). */
  send(job: Job): boolean;
  /** Writes a bookmark naming the newest revision written; false as send. */
  bookmark(revision: number): boolean;
  /** Ends the stream OK (after a terminal revision). */
  end(): void;
  /** Ends the stream with the error's status; after it, nothing more is written. */
  fail(error: unknown): void;
}

/** A watch started by JobFeed.watch. */
export interface WatchHandle {
  /** The stream drained ('drain'): the watch writes what waited for it. */
  resume(): void;
}

/** Hands a job change committed through this process to its watchers. */
export interface JobPublisher {
  /** Hands a changed job to this process's watchers at once (other replicas read it from the change feed). */
  publish(job: Job): void;
}

/** The watches as handlers use them (Watches implements it): publish what changed, follow one job. */
export interface JobFeed extends JobPublisher {
  /**
   * Writes the job's revisions in order to `sink`, ending it after a terminal status, failing it with
   * NotFoundError when the job is missing or not visible. With `opts.quietMs`, a bookmark each time the
   * job stayed quiet that long.
   */
  watch(jobId: string, opts: WatchOptions, sink: WatchSink): WatchHandle;
  /** What WatchJobs sends: snapshot, synced, then the changes of every job matching a filter (see JobsWatches). */
  watchJobs(opts: JobsWatchOptions): AsyncGenerator<JobsEvent>;
  /** How long a watch stays quiet before it gets a bookmark. */
  readonly bookmarkMs: number;
  /** Aborted at shutdown, once every watch has ended: a handler waiting for a slow client stops waiting. */
  readonly closing: AbortSignal;
}

// The page's one WatchJobs stream: the jobs matching the table's filter, kept current change by change
// and resumed from its last cursor when the connection drops; every view reads it.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { jobs } from "./api.js";
import type { Job } from "./gen/jobwatch/v1/job_pb.js";
import type { WatchJobsRequest } from "./gen/jobwatch/v1/job_service_pb.js";
import { WatchJobsEventType, WatchJobsRequestSchema } from "./gen/jobwatch/v1/job_service_pb.js";
import type { StreamEvents } from "./resumable.js";
import { follow } from "./resumable.js";

/** The table's filter, as the page's address holds it. */
export interface JobsFilter {
  statuses: number[];
  operationType: string;
  owner: string;
}

/** What the feed tells the page besides the jobs themselves. */
export interface FeedEvents {
  /** The connection's state changed: "connecting", "live", "reconnecting". */
  state(state: "connecting" | "live" | "reconnecting", detail: string): void;
  /** The session is over. */
  signedOut(error: unknown): void;
  /** The server refused the filter (INVALID_ARGUMENT, FAILED_PRECONDITION ...). */
  failed(error: unknown): void;
}

/** The jobs of one WatchJobs stream, by id; listeners hear of every change. */
export class JobsFeed {
  /** The jobs that match the filter now (after the first SYNCED). */
  readonly jobs = new Map<string, Job>();
  /** True once the snapshot is complete. */
  synced = false;
  private cursor = "";
  private snapshot = new Map<string, Job>();
  private controller: AbortController | undefined;
  private readonly listeners = new Set<(changed: readonly Job[], removed: readonly string[]) => void>();

  constructor(private readonly events: FeedEvents) {}

  /** Hears of every change (and of a whole new table, with every job in `changed`); returns how to stop. */
  listen(listener: (changed: readonly Job[], removed: readonly string[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** (Re)starts the stream for `filter`, from scratch. */
  start(filter: JobsFilter, allUsers: boolean): void {
    this.stop();
    this.cursor = "";
    this.synced = false;
    this.jobs.clear();
    this.emit([], []);
    const controller = new AbortController();
    this.controller = controller;
    const request = (): WatchJobsRequest =>
      create(WatchJobsRequestSchema, {
        statuses: filter.statuses,
        operationType: filter.operationType,
        username: filter.owner,
        // Everyone's jobs for a manager who names no owner; a user's stream is always their own.
        allUsers: allUsers && filter.owner === "",
        afterCursor: this.cursor,
      });
    this.events.state("connecting", "");
    const handlers: StreamEvents<{ type: WatchJobsEventType; jobs: Job[]; cursor: string }> = {
      message: (message) => this.apply(message),
      lost: (error, retryInMs) =>
        this.events.state(
          "reconnecting",
          `Connection lost (${error instanceof ConnectError ? error.rawMessage : String(error)}); ` +
            `reconnecting in ${Math.round(retryInMs / 100) / 10}s and resuming from the last cursor.`,
        ),
      resumed: () => this.events.state("live", "Reconnected: resumed from the last cursor, no change missed."),
      signedOut: (error) => this.events.signedOut(error),
      failed: (error) => this.events.failed(error),
    };
    void follow(
      (signal) => jobs.watchJobs(request(), { signal }),
      handlers,
      controller.signal,
      (error) => {
        // An expired cursor: start again from a fresh snapshot (the table is rebuilt).
        if (!(error instanceof ConnectError) || error.code !== Code.OutOfRange) return false;
        this.cursor = "";
        this.synced = false;
        return true;
      },
    );
  }

  /** Closes the stream. */
  stop(): void {
    this.controller?.abort();
    this.controller = undefined;
  }

  private apply(message: { type: WatchJobsEventType; jobs: Job[]; cursor: string }): void {
    this.cursor = message.cursor;
    switch (message.type) {
      case WatchJobsEventType.SNAPSHOT:
        if (this.snapshot.size === 0 && this.synced) this.synced = false;
        for (const job of message.jobs) this.snapshot.set(job.jobId, job);
        return;
      case WatchJobsEventType.SYNCED: {
        this.synced = true;
        this.jobs.clear();
        for (const [id, job] of this.snapshot) this.jobs.set(id, job);
        this.snapshot = new Map();
        this.events.state("live", "");
        this.emit([...this.jobs.values()], []);
        return;
      }
      case WatchJobsEventType.CHANGED:
        for (const job of message.jobs) this.jobs.set(job.jobId, job);
        this.emit(message.jobs, []);
        return;
      case WatchJobsEventType.REMOVED: {
        const ids = message.jobs.map((job) => job.jobId);
        for (const id of ids) this.jobs.delete(id);
        this.emit([], ids);
        return;
      }
      default:
        // BOOKMARK: only the cursor moves.
        if (this.synced) this.events.state("live", "");
    }
  }

  private emit(changed: readonly Job[], removed: readonly string[]): void {
    for (const listener of this.listeners) listener(changed, removed);
  }
}

// WatchJob as an AsyncIterable that survives disconnects: the reconnect core, resuming after the last revision.
import type { ClientReadableStream } from "@grpc/grpc-js";
import type { Job } from "../gen/jobwatch/v1/job.js";
import type { WatchJobRequest, WatchJobResponse } from "../gen/jobwatch/v1/job_service.js";
import { type ReconnectEvent, type ResumeOptions, resumable } from "./resumable-stream.js";
import { isTerminalStatus } from "./status.js";

/** Where a WatchJob resumes: after the last revision yielded (0 when none yet). */
export interface RevisionPosition {
  lastRevision: number;
}

/** What watchJob passes to `onRetry` before it reconnects; `lastRevision` is where it resumes. */
export type RetryEvent = ReconnectEvent<RevisionPosition>;

/** Options of watchJob: the reconnect options every watch takes, and where to start. */
export interface WatchOptions extends ResumeOptions<RevisionPosition> {
  /** Resume after this revision: changes up to it are not yielded. Unset yields the current state first. */
  afterRevision?: number;
}

/** Opens one WatchJob stream; the watch calls it again for every reconnect. */
export type OpenWatchStream = (request: WatchJobRequest) => ClientReadableStream<WatchJobResponse>;

/**
 * Yields the job at each new revision, in order, until a terminal status (nothing at all when
 * afterRevision is already the revision at which the job ended). On a dropped connection or UNAVAILABLE
 * (the server restarting, a replica going away) it reconnects with backoff and asks for the changes after
 * the last revision it yielded; the server replays the status changes missed meanwhile, so no status
 * transition is lost, and revisions already yielded are skipped, so none appears twice. Other errors
 * (NOT_FOUND, PERMISSION_DENIED ...) end the iteration with their typed error (resumable-stream.ts).
 */
export function resumableWatch(
  open: OpenWatchStream,
  path: string,
  jobId: string,
  options: WatchOptions = {},
): AsyncGenerator<Job, void, undefined> {
  let lastRevision = options.afterRevision ?? 0;
  return resumable<WatchJobResponse, Job, RevisionPosition>(
    {
      path,
      open: () => open(lastRevision > 0 ? { jobId, afterRevision: lastRevision } : { jobId }),
      position: () => ({ lastRevision }),
      receive(message) {
        const job = message.job;
        // A bookmark: the stream is alive, nothing to hand over.
        if (job === undefined) return { items: [] };
        // A revision already yielded (or covered by afterRevision) is not yielded again, but a terminal one
        // still ends the watch: nothing can follow it.
        const items = job.revision > lastRevision ? [job] : [];
        if (items.length > 0) lastRevision = job.revision;
        return { items, done: isTerminalStatus(job.status) };
      },
      // WatchJob ends with OK only once the job is terminal. With no terminal message seen, the caller already
      // had the final revision (afterRevision), so the server sent nothing: the watch is over. Reconnecting
      // would get the same empty answer forever.
      endedOk: () => true,
    },
    options,
  );
}

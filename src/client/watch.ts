// WatchJob as an AsyncIterable that survives disconnects: reconnect with backoff, resume after the last revision.
import { setTimeout as sleep } from "node:timers/promises";
import type { ClientReadableStream } from "@grpc/grpc-js";
import type { Job } from "../gen/jobwatch/v1/job.js";
import type { WatchJobRequest, WatchJobResponse } from "../gen/jobwatch/v1/job_service.js";
import { backoffDelay, type BackoffOptions } from "./backoff.js";
import { abortReason } from "./call.js";
import { idempotencyOf } from "./contract.js";
import { JobwatchClientError, toClientError } from "./errors.js";
import { isRetryable } from "./retry.js";
import { isTerminalStatus } from "./status.js";

/** What watchJob passes to `onRetry` before it reconnects. */
export interface RetryEvent {
  /** Why the stream ended: usually an UnavailableError. */
  error: JobwatchClientError;
  /** 1 for the first retry of this outage, 2 for the next ... */
  attempt: number;
  /** How long the client waits before reconnecting. */
  delayMs: number;
  /** The last revision yielded (0 when none yet); the stream resumes after it. */
  lastRevision: number;
}

/** Options of watchJob. */
export interface WatchOptions {
  /** Resume after this revision: changes up to it are not yielded. Unset yields the current state first. */
  afterRevision?: number;
  /** Ends the watch: the iterator rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Reconnect timing (default: from 100 ms doubling up to 5 s, with jitter). */
  backoff?: BackoffOptions;
  /** Give up when the server has been unreachable this long without a break, in ms (default: never). */
  giveUpAfterMs?: number;
  /** Called before each reconnect; return false to stop and throw the error instead. */
  onRetry?: (event: RetryEvent) => boolean | void;
  /** Called when a reconnect reached the server again (its headers or a message arrived). */
  onResume?: (event: { lastRevision: number }) => void;
}

/** Opens one WatchJob stream; the watch calls it again for every reconnect. */
export type OpenWatchStream = (request: WatchJobRequest) => ClientReadableStream<WatchJobResponse>;

/**
 * Yields the job at each new revision, in order, until a terminal status (nothing at all when
 * afterRevision is already the revision at which the job ended). On a dropped connection or UNAVAILABLE
 * (the server restarting, a replica going away) it reconnects with backoff and asks for the
 * changes after the last revision it yielded; the server replays the status changes missed meanwhile,
 * so no status transition is lost, and revisions already yielded are skipped, so none appears twice.
 * Whether an error is worth a reconnect is the client's one retry rule (retry.ts), for the idempotency
 * level the contract declares for the rpc at `path`; any other error (NOT_FOUND, PERMISSION_DENIED ...)
 * ends the iteration with its typed error.
 */
export async function* resumableWatch(
  open: OpenWatchStream,
  path: string,
  jobId: string,
  options: WatchOptions = {},
): AsyncGenerator<Job, void, undefined> {
  const { signal } = options;
  const idempotency = idempotencyOf(path);
  let lastRevision = options.afterRevision ?? 0;
  let attempt = 0;
  let outageSince: number | undefined;
  for (;;) {
    signal?.throwIfAborted();
    const request: WatchJobRequest = { jobId };
    if (lastRevision > 0) request.afterRevision = lastRevision;
    const call = open(request);
    let cancelledByUs = false;
    const onAbort = (): void => {
      cancelledByUs = true;
      call.cancel();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    // Headers or a message from the server mean this attempt reached it: the outage (if any) is over.
    const reached = (): void => {
      if (outageSince !== undefined) options.onResume?.({ lastRevision });
      attempt = 0;
      outageSince = undefined;
    };
    call.once("metadata", reached);
    let failure: JobwatchClientError;
    try {
      for await (const message of call as AsyncIterable<WatchJobResponse>) {
        reached();
        const job = message.job;
        if (job === undefined) continue;
        // A revision already yielded (or covered by afterRevision) is not yielded again, but a terminal
        // one still ends the watch: nothing can follow it.
        if (job.revision > lastRevision) {
          lastRevision = job.revision;
          yield job;
        }
        if (isTerminalStatus(job.status)) return;
      }
      // WatchJob ends with OK only once the job is terminal. With no terminal message seen, the caller
      // already had the final revision (afterRevision), so the server sent nothing: the watch is over.
      // Reconnecting would get the same empty answer forever.
      return;
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const typed = toClientError(err);
      if (!(typed instanceof JobwatchClientError)) throw typed;
      if (!isRetryable({ code: typed.code, message: typed.message, cancelledByUs }, idempotency)) throw typed;
      failure = typed;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      cancelledByUs = true;
      // The iterator has let go of the stream: the CANCELLED status our cancel() causes must not
      // surface as an unhandled 'error' event.
      call.on("error", () => undefined);
      call.cancel();
    }

    const now = Date.now();
    outageSince ??= now;
    if (options.giveUpAfterMs !== undefined && now - outageSince >= options.giveUpAfterMs) throw failure;
    const delayMs = backoffDelay(attempt, options.backoff);
    attempt += 1;
    if (options.onRetry?.({ error: failure, attempt, delayMs, lastRevision }) === false) throw failure;
    await sleep(delayMs, undefined, { signal }).catch(abortReason(signal));
  }
}

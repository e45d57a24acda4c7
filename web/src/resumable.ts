// One way the page follows a server stream: open it, and when it drops, reopen it from the last position
// (a WatchJobs cursor, a WatchJob revision) with backoff, telling the page what happened.
import { Code, ConnectError } from "@connectrpc/connect";
import { sessionEnded } from "./api.js";

/** What a resumable stream tells the page about its connection. */
export interface StreamEvents<M> {
  /** Each message, in order. */
  message(message: M): void;
  /** The stream dropped (server restart, network): it is reopened from the last position. */
  lost(error: unknown, retryInMs: number): void;
  /** The first message after a reopen arrived: the stream is live again, nothing missed. */
  resumed(): void;
  /** The session is over (UNAUTHENTICATED): the stream is not reopened. */
  signedOut(error: unknown): void;
  /** An error reopening cannot fix (NOT_FOUND, INVALID_ARGUMENT ...): the stream stops. */
  failed(error: unknown): void;
  /** The stream ended by itself (a finished job's WatchJob). */
  ended?(): void;
}

/** Codes for which reopening the stream can help. */
const RETRYABLE = new Set([Code.Unavailable, Code.Unknown, Code.Internal, Code.Aborted, Code.ResourceExhausted]);

/**
 * Runs `open(signal)` (a connect-es server-streaming call from the last position) until it ends, the
 * signal aborts, or an error reopening cannot fix; `restart` (optional) says whether an error means
 * starting again from scratch (an expired WatchJobs cursor).
 */
export async function follow<M>(
  open: (signal: AbortSignal) => AsyncIterable<M>,
  events: StreamEvents<M>,
  signal: AbortSignal,
  restart: (error: unknown) => boolean = () => false,
): Promise<void> {
  let backoff = 0;
  let reopened = false;
  while (!signal.aborted) {
    try {
      for await (const message of open(signal)) {
        if (reopened) {
          reopened = false;
          events.resumed();
        }
        backoff = 0;
        events.message(message);
      }
      events.ended?.();
      return;
    } catch (error) {
      if (signal.aborted) return;
      if (sessionEnded(error)) return events.signedOut(error);
      const code = error instanceof ConnectError ? error.code : Code.Unavailable;
      if (!RETRYABLE.has(code) && !restart(error)) return events.failed(error);
      backoff = Math.min(backoff === 0 ? 250 : backoff * 2, 5000);
      events.lost(error, backoff);
      reopened = true;
      await new Promise((resolve) => setTimeout(resolve, backoff));
    }
  }
}

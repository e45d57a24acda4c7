// The one reconnect core of the client's watches: open a server stream, hand its messages over, and after a
// drop reconnect with backoff from where it was (WatchJob after a revision, WatchJobs after a cursor).
import { setTimeout as sleep } from "node:timers/promises";
import { type ClientReadableStream, status } from "@grpc/grpc-js";
import { type BackoffOptions, backoffDelay } from "./backoff.js";
import { abortReason } from "./call.js";
import { idempotencyOf } from "./contract.js";
import { JobwatchClientError, toClientError } from "./errors.js";
import { isRetryable } from "./retry.js";

/** What a watch passes to `onRetry` before it reconnects: why, which attempt, how long it waits, and where it resumes. */
export type ReconnectEvent<Position> = {
  /** Why the stream ended: usually an UnavailableError. */
  error: JobwatchClientError;
  /** 1 for the first retry of this outage, 2 for the next ... (back to 1 once a message arrived). */
  attempt: number;
  /** How long the client waits before reconnecting. */
  delayMs: number;
} & Position;

/** The reconnect options every watch takes (watchJob and watchJobs alike); `Position` says where it resumes. */
export interface ResumeOptions<Position> {
  /** Ends the watch: the iterator rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Reconnect timing (default: from 100 ms doubling up to 5 s, with jitter). */
  backoff?: BackoffOptions;
  /** Give up when the server has been unreachable this long without a break, in ms (default: never). */
  giveUpAfterMs?: number;
  /** Called before each reconnect; return false to stop and throw the error instead. */
  onRetry?: (event: ReconnectEvent<Position>) => boolean | void;
  /** Called each time a stream reaches the server (its response headers arrived), the first time included. */
  onConnected?: () => void;
  /** Called when a reconnect reached the server again after an outage (not for the first connection). */
  onResume?: (event: Position) => void;
}

/** One watch as the core drives it: how to open it from where it is, and what each message means. */
export interface ResumableStream<Message, Item, Position> {
  /** The gRPC path, whose contract idempotency_level the retry rule reads. */
  path: string;
  /** Opens one stream from the current position; called again for every reconnect. */
  open(): ClientReadableStream<Message>;
  /** Where the watch is now (for events); the stream moves it as it hands messages over. */
  position(): Position;
  /** The items one message stands for; `done` ends the watch once they are handed over. */
  receive(message: Message): { items: Item[]; done?: boolean };
  /** The server ended the stream with OK: true means the watch is over, false reconnects as after a drop. */
  endedOk(): boolean;
  /** An error the watch answers itself (items to hand over, then reopen at once); undefined leaves it to the retry rule. */
  recover?(error: JobwatchClientError): Item[] | undefined;
  /** Items to hand over before reopening after a failed attempt (e.g. a reset when a snapshot broke off). */
  beforeReopen?(): Item[];
}

/**
 * Yields the items of `stream` for as long as the caller iterates (or until `receive` says done). A dropped
 * connection or an error the client's one retry rule (retry.ts) calls worth repeating, for the idempotency
 * level the contract declares for the rpc, reconnects after a backoff from the stream's position; any other
 * error ends the iteration with its typed error, and an abort with the signal's reason.
 */
export async function* resumable<Message, Item, Position>(
  stream: ResumableStream<Message, Item, Position>,
  options: ResumeOptions<Position> = {},
): AsyncGenerator<Item, void, undefined> {
  const { signal } = options;
  let attempt = 0;
  let outageSince: number | undefined;
  for (;;) {
    signal?.throwIfAborted();
    const call = stream.open();
    let cancelledByUs = false;
    const onAbort = (): void => {
      cancelledByUs = true;
      call.cancel();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    // Headers mean this attempt reached the server: the outage (if any) is over. The backoff starts again
    // only once a message arrives, so a server that accepts and then fails at once is not hammered.
    call.once("metadata", () => {
      if (outageSince !== undefined) options.onResume?.(stream.position());
      outageSince = undefined;
      options.onConnected?.();
    });
    let failure: JobwatchClientError;
    try {
      for await (const message of call as AsyncIterable<Message>) {
        attempt = 0;
        outageSince = undefined;
        const { items, done } = stream.receive(message);
        for (const item of items) yield item;
        if (done) return;
      }
      if (stream.endedOk()) return;
      failure = new JobwatchClientError("the server ended the stream", status.UNAVAILABLE);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const typed = toClientError(err);
      if (!(typed instanceof JobwatchClientError)) throw typed;
      const recovered = stream.recover?.(typed);
      if (recovered !== undefined) {
        for (const item of recovered) yield item;
        continue;
      }
      if (!isRetryable({ code: typed.code, message: typed.message, cancelledByUs }, await idempotencyOf(stream.path))) {
        throw typed;
      }
      failure = typed;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      cancelledByUs = true;
      // The iterator has let go of the stream: the CANCELLED status our cancel() causes must not surface
      // as an unhandled 'error' event.
      call.on("error", () => undefined);
      call.cancel();
    }

    const now = Date.now();
    outageSince ??= now;
    if (options.giveUpAfterMs !== undefined && now - outageSince >= options.giveUpAfterMs) throw failure;
    const delayMs = backoffDelay(attempt, options.backoff);
    attempt += 1;
    if (options.onRetry?.({ error: failure, attempt, delayMs, ...stream.position() }) === false) throw failure;
    await sleep(delayMs, undefined, { signal }).catch(abortReason(signal));
    for (const item of stream.beforeReopen?.() ?? []) yield item;
  }
}

// A WatchJob watch read one message at a time, over the hub's push API: what a client that asks for
// each next message sees, for tests of the hub's ordering, coalescing, resume and shutdown rules.
import type { Job } from "../../src/store/job.js";
import type { JobFeed, WatchOptions } from "../../src/watch/job-feed.js";

/**
 * Watches `jobId` through `hub` with a sink that is full after every message: the hub writes one change
 * and waits until the reader asks for the next (resume), so changes that come meanwhile wait in the
 * watcher's queue, coalesced, as they would behind a stream that does not drain. Ends after a terminal
 * revision; throws what the watch fails with. Stopping to read (return) releases the watch, as a client
 * cancel does.
 */
export async function* pullWatch(hub: Pick<JobFeed, "watch">, jobId: string, opts: WatchOptions): AsyncGenerator<Job> {
  const stop = new AbortController();
  const onAbort = (): void => stop.abort(opts.signal.reason);
  if (opts.signal.aborted) onAbort();
  else opts.signal.addEventListener("abort", onAbort, { once: true });
  const buffer: Job[] = [];
  let end: { error?: unknown; failed: boolean } | undefined;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const handle = hub.watch(
    jobId,
    { ...opts, signal: stop.signal },
    {
      prepare: () => undefined,
      send: (job) => {
        buffer.push(job);
        notify();
        return false;
      },
      bookmark: () => false,
      end: () => {
        end = { failed: false };
        notify();
      },
      fail: (error) => {
        end = { failed: true, error };
        notify();
      },
    },
  );
  try {
    for (;;) {
      const job = buffer.shift();
      if (job) {
        yield job;
        continue;
      }
      if (end) {
        if (end.failed) throw end.error;
        return;
      }
      // The reader asks for more: the stream "drained".
      handle.resume();
      if (buffer.length === 0 && !end) await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    opts.signal.removeEventListener("abort", onAbort);
    stop.abort();
  }
}

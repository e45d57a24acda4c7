// Keeps an idle stream visibly alive: a heartbeat message whenever the source has been quiet for an interval.

/**
 * Yields what `source` yields, and `heartbeat()` each time `intervalMs` passes without a value. The
 * pending read of the source is kept across heartbeats (never started twice), so nothing is lost or
 * reordered; returning this generator returns the source too. One timer serves the whole stream,
 * re-armed when each wait starts: a fan-out to thousands of streams makes no timer per message.
 */
export async function* withHeartbeats<T, H>(
  source: AsyncIterable<T>,
  intervalMs: number,
  heartbeat: () => H,
): AsyncGenerator<T | H> {
  const iterator = source[Symbol.asyncIterator]();
  let pending: Promise<IteratorResult<T>> | undefined;
  let quiet: (() => void) | undefined;
  const timer = setTimeout(() => quiet?.(), intervalMs);
  // A stream's timer must not keep a process alive that has nothing else to do.
  timer.unref();
  try {
    for (;;) {
      pending ??= iterator.next();
      const read = pending;
      timer.refresh();
      const result = await new Promise<IteratorResult<T> | "quiet">((resolve, reject) => {
        quiet = () => resolve("quiet");
        read.then(resolve, reject);
      });
      quiet = undefined;
      if (result === "quiet") {
        yield heartbeat();
        continue;
      }
      pending = undefined;
      if (result.done) return;
      yield result.value;
    }
  } finally {
    clearTimeout(timer);
    // A read still pending settles when the call's signal ends the source; return() runs after it (an
    // async generator queues it), so it is not awaited here, and neither outcome is anyone's error now.
    pending?.catch(() => undefined);
    iterator.return?.().catch(() => undefined);
  }
}

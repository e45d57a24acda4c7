// Keeps an idle stream visibly alive: a heartbeat message whenever the source has been quiet for an interval.

/**
 * Yields what `source` yields, and `heartbeat()` each time `intervalMs` passes without a value. The
 * pending read of the source is kept across heartbeats (never started twice), so nothing is lost or
 * reordered; returning this generator returns the source too.
 */
export async function* withHeartbeats<T, H>(
  source: AsyncIterable<T>,
  intervalMs: number,
  heartbeat: () => H,
): AsyncGenerator<T | H> {
  const iterator = source[Symbol.asyncIterator]();
  let pending: Promise<IteratorResult<T>> | undefined;
  try {
    for (;;) {
      pending ??= iterator.next();
      let timer: NodeJS.Timeout | undefined;
      const quiet = new Promise<"quiet">((resolve) => {
        timer = setTimeout(() => resolve("quiet"), intervalMs);
      });
      const result = await Promise.race([pending, quiet]).finally(() => clearTimeout(timer));
      if (result === "quiet") {
        yield heartbeat();
        continue;
      }
      pending = undefined;
      if (result.done) return;
      yield result.value;
    }
  } finally {
    // A read still pending settles when the call's signal ends the source; return() runs after it (an
    // async generator queues it), so it is not awaited here, and neither outcome is anyone's error now.
    pending?.catch(() => undefined);
    iterator.return?.().catch(() => undefined);
  }
}

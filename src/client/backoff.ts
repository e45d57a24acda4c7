// Reconnect timing: exponential backoff with jitter.

/** How long to wait between attempts against an unavailable server. */
export interface BackoffOptions {
  /** The cap of the first delay, in ms (default 100). */
  initialDelayMs?: number;
  /** The largest delay, in ms (default 5000). */
  maxDelayMs?: number;
}

/**
 * The delay before retry number `attempt` (0 for the first retry): between half and all of
 * initial * 2^attempt, capped. The random half keeps many clients that lost the same server from
 * reconnecting in lockstep when it comes back; the fixed half keeps a client from hammering a dead one.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const initial = options.initialDelayMs ?? 100;
  const max = options.maxDelayMs ?? 5000;
  const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

// Writes that lose a race with other writers (a deadlock victim, a failed Galera certification, SQLITE_BUSY): which
// errors they are, the pause before running one again, and the ABORTED a caller gets once the attempts run out.
import { AbortedError } from "../errors.js";

/**
 * The pause before retry number `attempt` (1 = the first retry) of a write that lost a race: "full
 * jitter" (a random delay up to a ceiling that doubles from `baseMs` to at most `capMs`), so writers
 * that collided once do not collide again in lockstep, and the ceiling stays small enough that the
 * retries of one call fit in a client's deadline.
 */
export function jitteredBackoff(attempt: number, { baseMs, capMs }: { baseMs: number; capMs: number }): number {
  return Math.random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt - 1, 30));
}

/** What a write (or a causal read) that kept losing to other writers ends in: ABORTED, nothing written. */
export function lostRace(error: unknown, what = "nothing was written"): AbortedError {
  return new AbortedError(
    `the database kept reporting a conflict with other writers (${transientName(error)}); ${what}; try again`,
    { cause: error },
  );
}

/** The driver's name of a transient error, for the message of the AbortedError it ends in. */
function transientName(error: unknown): string {
  const { code, errno } = errorCode(error);
  if (typeof code === "string") return code;
  return typeof errno === "number" ? `errno ${errno}` : "lock conflict";
}

export function errorCode(error: unknown): { code?: unknown; errno?: unknown } {
  return typeof error === "object" && error !== null ? (error as { code?: unknown; errno?: unknown }) : {};
}

/**
 * Errors after which running the same transaction again can succeed: SQLITE_BUSY (another process
 * held the write lock past busy_timeout), ER_LOCK_DEADLOCK 1213 (InnoDB chose this transaction as a
 * deadlock victim; Galera reports a failed certification the same way) and ER_LOCK_WAIT_TIMEOUT 1205.
 * Each rolled the transaction back, so nothing of it was written.
 */
export function isTransient(error: unknown): boolean {
  const { code, errno } = errorCode(error);
  return (
    (typeof code === "string" && code.startsWith("SQLITE_BUSY")) ||
    code === "ER_LOCK_DEADLOCK" ||
    errno === 1213 ||
    code === "ER_LOCK_WAIT_TIMEOUT" ||
    errno === 1205
  );
}

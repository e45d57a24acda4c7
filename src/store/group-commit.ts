// SQLite group commit: the write transactions that arrive in one turn of the event loop run as one
// transaction, each in a savepoint of its own, so they share one BEGIN IMMEDIATE and one COMMIT.
import { setTimeout as sleep } from "node:timers/promises";
import type SqliteDatabase from "better-sqlite3";
import { classifyStorageError } from "./storage-faults.js";

/** Bodies in one group at most: a group holds the write lock, and the event loop, while it runs. */
const MAX_GROUP = 256;

interface Pending {
  run(): unknown;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** How a group that failed as a whole goes on: retry after `delayMs`, or fail every write with `error`. */
type GroupRetry = { delayMs: number } | { error: unknown };

/** Options of groupCommit. */
export interface GroupCommitOptions {
  /** Decides after a group failed as a whole (SQLITE_BUSY at BEGIN, a storage fault): retry or give up. */
  onGroupError(error: unknown, attempt: number): GroupRetry;
  /** True for an error that ends the whole group (the transaction cannot go on), not one write. */
  endsGroup(error: unknown): boolean;
}

/**
 * Returns `write(run)`: runs `run` (synchronous statements on `sqlite`) in a write transaction and
 * resolves with its result once that transaction committed. Writes that arrive before the next turn of
 * the event loop (setImmediate) go into the same transaction, each in its own savepoint: one that throws
 * is rolled back alone and rejects alone, the others commit together. With a hundred workers reporting
 * at once, the commit's WAL writes (the pages of the jobs table, its indexes, the event log, the
 * counters, most of them shared) are paid once per group instead of once per call.
 *
 * An error that ends the group (`endsGroup`: SQLITE_BUSY, a full disk, a read-only file) rolls every
 * write of it back; `onGroupError` says whether to run the group again or reject each write with an
 * error. Groups run one after the other, so writes are applied in the order they arrived.
 */
export function groupCommit(sqlite: SqliteDatabase.Database, options: GroupCommitOptions) {
  let pending: Pending[] = [];
  let scheduled = false;
  let running = false;

  const runGroup = (group: Pending[]): ({ value: unknown } | { error: unknown })[] => {
    const outcomes: ({ value: unknown } | { error: unknown })[] = [];
    sqlite
      .transaction(() => {
        outcomes.length = 0;
        for (const write of group) {
          try {
            // Nested: better-sqlite3 runs it in a SAVEPOINT, rolled back alone when it throws.
            outcomes.push({ value: sqlite.transaction(write.run)() });
          } catch (error) {
            if (options.endsGroup(error)) throw error;
            outcomes.push({ error });
          }
        }
      })
      .immediate();
    return outcomes;
  };

  const flush = async (): Promise<void> => {
    scheduled = false;
    running = true;
    try {
      while (pending.length > 0) {
        const group = pending.length <= MAX_GROUP ? pending : pending.slice(0, MAX_GROUP);
        pending = pending.length <= MAX_GROUP ? [] : pending.slice(MAX_GROUP);
        for (let attempt = 1; ; attempt++) {
          let outcomes: ({ value: unknown } | { error: unknown })[];
          try {
            outcomes = runGroup(group);
          } catch (error) {
            const next = options.onGroupError(error, attempt);
            if ("delayMs" in next) {
              await sleep(next.delayMs);
              continue;
            }
            for (const write of group) write.reject(next.error);
            break;
          }
          for (const [i, write] of group.entries()) {
            const outcome = outcomes[i]!;
            if ("error" in outcome) write.reject(outcome.error);
            else write.resolve(outcome.value);
          }
          break;
        }
      }
    } finally {
      running = false;
    }
  };

  return function write<T>(run: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      pending.push({ run, resolve: resolve as (value: unknown) => void, reject });
      if (!scheduled && !running) {
        scheduled = true;
        setImmediate(() => void flush());
      }
    });
  };
}

/**
 * SQLite errors after which the transaction cannot go on (SQLite may have rolled it back already): busy,
 * locked, I/O, full, read-only, corrupt, out of memory, interrupted. A constraint or a write's own error
 * ends that write alone.
 */
export function endsSqliteGroup(error: unknown): boolean {
  if (classifyStorageError(error) !== undefined) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return (
    typeof code === "string" &&
    /^SQLITE_(BUSY|LOCKED|IOERR|FULL|READONLY|CORRUPT|NOMEM|INTERRUPT|CANTOPEN|NOTADB|PROTOCOL)/.test(code)
  );
}

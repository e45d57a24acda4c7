// Transactions on either dialect: a body yields compiled statements; SQLite runs it synchronously, MySQL on one connection.
import { setTimeout as sleep } from "node:timers/promises";
import type { CompiledQuery, Kysely, QueryResult } from "kysely";
import type { CausalReader } from "./causal-read.js";
import { causalReader } from "./causal-read.js";
import type { Dialect, OpenDatabase } from "./connect.js";
import type { Database } from "./database.js";
import { endsSqliteGroup, groupCommit } from "./group-commit.js";
import { errorCode, isTransient, jitteredBackoff, lostRace } from "./lost-race.js";
import { classifyStorageError } from "./storage-faults.js";

/** The result of one statement of a transaction body. */
type StatementResult = QueryResult<Record<string, unknown>>;

/** A transaction as a generator: it yields compiled statements and receives their results. */
export type TxBody<T> = () => Generator<CompiledQuery, T, StatementResult>;

/**
 * What every store function takes first (as kysely's example app passes `db`): Kysely for single
 * statements, the clock, and the transaction runner of the dialect.
 */
export interface StoreDb {
  /** Kysely on the database; single statements run here (each its own implicit transaction). */
  readonly kysely: Kysely<Database>;
  /** Which SQL dialect the database speaks. */
  readonly dialect: Dialect;
  /** The drivers under Kysely, for the hot job read that skips Kysely's layers (read-batch.ts). */
  readonly open: OpenDatabase;
  /** The clock, epoch ms. */
  readonly now: () => number;
  /**
   * Runs a write transaction. SQLite: synchronously inside BEGIN IMMEDIATE on the raw handle, so the
   * write lock is never held across an await, together with the other writes of the same turn of the
   * event loop, each in its own savepoint (group-commit.ts). MySQL: a Kysely transaction on one pooled
   * connection.
   * Deadlocks, lock timeouts (MySQL, and Galera's certification failures, which it reports as
   * deadlocks) and SQLITE_BUSY are a lost race: the body runs again from the start after a jittered
   * backoff, and when it keeps losing, AbortedError (nothing was written). Never the raw driver error.
   */
  write<T>(body: TxBody<T>): Promise<T>;
  /**
   * Runs a read-only transaction on one consistent snapshot. SQLite: synchronously inside a deferred
   * BEGIN on the raw handle, like write, so the read lock is never held across an await (a Kysely
   * transaction would hold it while the synchronous write path, on the same handle or another
   * connection, could run or busy-wait on the one event loop). MySQL: REPEATABLE READ for this
   * transaction (the session runs READ COMMITTED, where each SELECT sees a new snapshot), read only.
   */
  read<T>(body: TxBody<T>): Promise<T>;
  /** Reads that must see every write committed before them on any node of a Galera cluster. */
  readonly causal: CausalReader;
  /**
   * Runs one statement on its own (its own implicit transaction). SQLite: synchronously, through the
   * cached prepared statement; MySQL: on a pooled connection. For hot queries compiled once.
   */
  query(q: CompiledQuery): Promise<StatementResult>;
}

/**
 * Attempts of a transaction that failed on a deadlock, lock timeout or SQLITE_BUSY. Generous because on
 * Galera every writer of a job's counters (job_counts) on another node is a certification conflict: with
 * a dozen concurrent writers of one user's jobs through three nodes, six attempts ran out (ABORTED)
 * several times in 150; twenty with a 250 ms cap still ran out 6 times in 150 in one CI run (read-your-writes
 * across replicas, test/galera/cluster.test.ts): thirty, with delays spread up to 500 ms. The cause stays: one
 * user's counter rows written through several nodes at once (see the README's Galera section).
 */
export const MAX_TX_ATTEMPTS = 30;
/** Backoff of a transaction retry: the first delay's ceiling and the most any delay's ceiling grows to. */
const TX_BACKOFF = { baseMs: 5, capMs: 500 } as const;

/** The StoreDb of an open database; `now` is the clock (tests pass one they can move). */
export function createStoreDb(open: OpenDatabase, now: () => number): StoreDb {
  const kysely = open.db;
  const sqlite = open.dialect === "sqlite" ? open.sqlite : undefined;
  // The same statement cache as Kysely's queries use (connect.ts): no SQL text is prepared twice.
  const prepare = open.dialect === "sqlite" ? open.prepare : undefined;

  const execSync = (q: CompiledQuery): StatementResult => {
    const stmt = prepare!(q.sql);
    const params = q.parameters as unknown[];
    if (stmt.reader) return { rows: stmt.all(params) as Record<string, unknown>[] };
    const info = stmt.run(params);
    return { rows: [], numAffectedRows: BigInt(info.changes), insertId: BigInt(info.lastInsertRowid) };
  };

  // SQLite: writes of one turn of the event loop share a transaction (see groupCommit); one that keeps
  // meeting SQLITE_BUSY (another process holds the write lock) is retried like a MySQL deadlock.
  const grouped =
    sqlite === undefined
      ? undefined
      : groupCommit(sqlite, {
          // A lost race (SQLITE_BUSY; or any transient code a body throws) runs the whole group again.
          endsGroup: (error) => isTransient(error) || endsSqliteGroup(error),
          onGroupError: (error, attempt) => {
            if (!isTransient(error)) return { error };
            if (attempt >= MAX_TX_ATTEMPTS) return { error: lostRace(error) };
            return { delayMs: jitteredBackoff(attempt, TX_BACKOFF) };
          },
        });

  return {
    kysely,
    dialect: open.dialect,
    open,
    now,
    causal: causalReader(kysely, open.dialect),
    async write<T>(body: TxBody<T>): Promise<T> {
      if (grouped !== undefined) return grouped(() => drive(body(), execSync));
      let bodyDone = false;
      let reran = false;
      for (let attempt = 1; ; attempt++) {
        try {
          bodyDone = false;
          return await kysely.transaction().execute(async (trx) => {
            const result = await driveAsync(body(), (q) => trx.executeQuery<Record<string, unknown>>(q));
            bodyDone = true;
            return result;
          });
        } catch (error) {
          // The connection broke before COMMIT was sent (under BEGIN or a statement): the server rolls
          // the transaction back, so running it again on a fresh connection cannot apply it twice.
          if (!bodyDone && !reran && isConnectionFault(error)) {
            reran = true;
            continue;
          }
          if (!isTransient(error)) throw error;
          if (attempt >= MAX_TX_ATTEMPTS) throw lostRace(error);
          await sleep(jitteredBackoff(attempt, TX_BACKOFF));
        }
      }
    },
    async read<T>(body: TxBody<T>): Promise<T> {
      if (sqlite !== undefined) {
        return sqlite.transaction(() => drive(body(), execSync)).deferred();
      }
      return kysely
        .transaction()
        .setIsolationLevel("repeatable read")
        .setAccessMode("read only")
        .execute((trx) => driveAsync(body(), (q) => trx.executeQuery<Record<string, unknown>>(q)));
    },
    async query(q: CompiledQuery): Promise<StatementResult> {
      if (sqlite !== undefined) return execSync(q);
      return kysely.executeQuery<Record<string, unknown>>(q);
    },
  };
}

/** Runs a transaction body to its end, executing each statement it yields with `exec`. */
function drive<T>(gen: Generator<CompiledQuery, T, StatementResult>, exec: (q: CompiledQuery) => StatementResult): T {
  let step = gen.next();
  while (!step.done) step = gen.next(exec(step.value));
  return step.value;
}

/** drive() with statements that run asynchronously (a Kysely transaction). */
async function driveAsync<T>(
  gen: Generator<CompiledQuery, T, StatementResult>,
  exec: (q: CompiledQuery) => Promise<StatementResult>,
): Promise<T> {
  let step = gen.next();
  while (!step.done) step = gen.next(await exec(step.value));
  return step.value;
}

/** A unique (or primary) key violation on either dialect. */
export function isUniqueViolation(error: unknown): boolean {
  const { code, errno } = errorCode(error);
  return (
    code === "SQLITE_CONSTRAINT_UNIQUE" ||
    code === "SQLITE_CONSTRAINT_PRIMARYKEY" ||
    code === "ER_DUP_ENTRY" ||
    errno === 1062
  );
}

/** A connection that broke or could not be made (storage-faults.ts), as opposed to a refusal that persists. */
function isConnectionFault(error: unknown): boolean {
  const kind = classifyStorageError(error)?.kind;
  return kind === "lost" || kind === "unreachable";
}

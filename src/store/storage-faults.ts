// Which driver errors mean "the database cannot serve right now" (SQLite, MySQL/MariaDB, Galera), and what a caller is told.
import { UnavailableError } from "../errors.js";

/**
 * How a storage fault affects a retry of the same operation:
 * - "lost": the connection broke (killed, server gone, network); a fresh connection may work at once.
 * - "unreachable": no connection could be made, so the statement never reached the database.
 * - "not-ready": the server answers but cannot serve (a Galera node outside the primary component).
 * - "refused-write": the server refuses writes (disk full, read-only file or server); reads may still work.
 */
type FaultKind = "lost" | "unreachable" | "not-ready" | "refused-write";

/** A classified storage fault. */
export interface StorageFault {
  kind: FaultKind;
  /** The driver's code (e.g. PROTOCOL_CONNECTION_LOST, SQLITE_FULL, ER_UNKNOWN_COM_ERROR). */
  code: string;
  /** What went wrong, in words a client can read; names no host, path or credential. */
  reason: string;
}

/** Network and connection errors from mysql2 and Node's sockets, by code. */
const CONNECTION_CODES: Record<string, [FaultKind, string]> = {
  PROTOCOL_CONNECTION_LOST: ["lost", "the connection to the database was lost"],
  ECONNRESET: ["lost", "the connection to the database was reset"],
  EPIPE: ["lost", "the connection to the database was closed"],
  PROTOCOL_SEQUENCE_TIMEOUT: ["lost", "the database stopped answering"],
  PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR: ["lost", "the connection to the database had failed"],
  PROTOCOL_ENQUEUE_AFTER_QUIT: ["lost", "the connection to the database was closed"],
  ER_CONNECTION_KILLED: ["lost", "the database killed the connection"],
  ER_SERVER_SHUTDOWN: ["lost", "the database server is shutting down"],
  ER_QUERY_INTERRUPTED: ["lost", "the database interrupted the query"],
  ER_NET_READ_ERROR: ["lost", "the connection to the database failed"],
  ER_NET_READ_INTERRUPTED: ["lost", "the connection to the database timed out"],
  ER_NET_ERROR_ON_WRITE: ["lost", "the connection to the database failed"],
  ER_NET_WRITE_INTERRUPTED: ["lost", "the connection to the database timed out"],
  ER_CLIENT_INTERACTION_TIMEOUT: ["lost", "the database closed an idle connection"],
  ECONNREFUSED: ["unreachable", "the database refuses connections"],
  ETIMEDOUT: ["unreachable", "connecting to the database timed out"],
  EHOSTUNREACH: ["unreachable", "the database host is unreachable"],
  ENETUNREACH: ["unreachable", "the database network is unreachable"],
  ENOTFOUND: ["unreachable", "the database host name does not resolve"],
  EAI_AGAIN: ["unreachable", "the database host name does not resolve"],
  ER_CON_COUNT_ERROR: ["unreachable", "the database has too many connections"],
  ER_TOO_MANY_USER_CONNECTIONS: ["unreachable", "the database user has too many connections"],
  ER_ACCESS_DENIED_ERROR: ["unreachable", "the database refused jobwatch's credentials"],
  ER_DBACCESS_DENIED_ERROR: ["unreachable", "the database refused access to jobwatch's database"],
  // Galera: a node outside the primary component ("WSREP has not yet prepared node for application use").
  ER_UNKNOWN_COM_ERROR: ["not-ready", "the database node is not part of its cluster's primary component"],
  // Galera: a causal read (wsrep_sync_wait) that waited longer than innodb_lock_wait_timeout for the node to apply
  // what the cluster committed, e.g. a node just woken from a stall catching up. Transactions retry it themselves
  // (transaction.ts isTransient) and end ABORTED; a read ended INTERNAL before (found by test/guarantees).
  ER_LOCK_WAIT_TIMEOUT: ["not-ready", "the database node is still catching up with its cluster"],
  ER_OPTION_PREVENTS_STATEMENT: ["refused-write", "the database is read-only"],
  ER_READ_ONLY_MODE: ["refused-write", "the database is read-only"],
  ER_INNODB_READ_ONLY: ["refused-write", "the database is read-only"],
  ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION: ["refused-write", "the database is read-only"],
  ER_DISK_FULL: ["refused-write", "the database's disk is full"],
  ER_RECORD_FILE_FULL: ["refused-write", "the database's disk (or table space) is full"],
  ER_OUT_OF_RESOURCES: ["refused-write", "the database is out of memory"],
  ER_OUTOFMEMORY: ["refused-write", "the database is out of memory"],
  ER_ERROR_ON_WRITE: ["refused-write", "the database cannot write its files"],
  ER_GET_ERRNO: ["refused-write", "the database's storage engine failed"],
  ER_TEMP_FILE_WRITE_FAILURE: ["refused-write", "the database cannot write its temporary files"],
};

/** SQLite result codes (better-sqlite3 puts the extended code in `code`), by prefix. */
const SQLITE_PREFIXES: [string, FaultKind, string][] = [
  ["SQLITE_FULL", "refused-write", "the database's disk is full"],
  ["SQLITE_READONLY", "refused-write", "the database file is read-only"],
  ["SQLITE_IOERR", "refused-write", "the database file cannot be read or written (I/O error)"],
  ["SQLITE_CANTOPEN", "unreachable", "the database file cannot be opened"],
  ["SQLITE_BUSY", "not-ready", "the database file is locked by another process"],
  ["SQLITE_LOCKED", "not-ready", "the database file is locked"],
  ["SQLITE_CORRUPT", "not-ready", "the database file is damaged"],
  ["SQLITE_NOTADB", "not-ready", "the database file is damaged"],
  ["SQLITE_NOMEM", "not-ready", "the database is out of memory"],
  ["SQLITE_PROTOCOL", "not-ready", "the database file's locking failed"],
];

/**
 * The storage fault an error from the database driver stands for, or undefined when it is something
 * else (a constraint, a bug in a query): those stay what they are, and end up INTERNAL if nobody
 * expects them. Looks through `cause` and AggregateError (a connect that tried several addresses).
 */
export function classifyStorageError(error: unknown, depth = 0): StorageFault | undefined {
  if (typeof error !== "object" || error === null || depth > 4) return undefined;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === "string") {
    const known = CONNECTION_CODES[code];
    if (known) return { kind: known[0], code, reason: known[1] };
    for (const [prefix, kind, reason] of SQLITE_PREFIXES) {
      if (code.startsWith(prefix)) return { kind, code, reason };
    }
  }
  // mysql2's errors for a connection that died under a transaction (its ROLLBACK then fails with
  // this, hiding the first error) carry no code, only these words; the statement may have run.
  if (typeof message === "string" && /in closed state|Pool is closed|connection is not open/i.test(message)) {
    return { kind: "lost", code: "PROTOCOL_CONNECTION_LOST", reason: "the connection to the database was lost" };
  }
  if (error instanceof AggregateError) {
    for (const inner of error.errors) {
      const fault = classifyStorageError(inner, depth + 1);
      if (fault) return fault;
    }
  }
  return classifyStorageError((error as { cause?: unknown }).cause, depth + 1);
}

/**
 * The UnavailableError a client gets for a storage fault: it says the database is the problem and
 * that the call can be retried (another replica may have a working database).
 */
export function databaseUnavailable(fault: StorageFault, cause?: unknown): UnavailableError {
  return new UnavailableError(`database unavailable: ${fault.reason} (${fault.code}); try again later`, { cause });
}

// Opens the database named by a jobwatch database URL: SQLite through better-sqlite3, MySQL/MariaDB through a mysql2 pool.
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import SqliteDatabase from "better-sqlite3";
import { CompiledQuery, Kysely, MysqlDialect, SqliteDialect } from "kysely";
import type { Pool, PoolConnection } from "mysql2";
import { createPool } from "mysql2";
import type { Database } from "./database.js";

/** The SQL dialects jobwatch runs on. */
export type Dialect = "sqlite" | "mysql";

/**
 * An open database. On SQLite the raw better-sqlite3 handle comes along: the store runs its write
 * transactions on it synchronously, so a transaction never holds the file's write lock across an
 * await (another connection in the same process would otherwise busy-wait on the event loop it blocks).
 */
export type OpenDatabase =
  | {
      db: Kysely<Database>;
      dialect: "sqlite";
      sqlite: SqliteDatabase.Database;
      /** The statement of this SQL text, prepared once and cached (Kysely's queries go through it too). */
      prepare(sql: string): SqliteDatabase.Statement;
    }
  | {
      db: Kysely<Database>;
      dialect: "mysql";
      /** The mysql2 pool under Kysely: the hot job read runs its prepared statement here (read-batch.ts). */
      pool: Pool;
    };

/** The accepted URL forms, for error messages. */
const DATABASE_URL_FORMS = "sqlite:<path>, sqlite::memory: or mysql://user:pass@host:3306/db";

/** Prepared statements kept per SQLite connection; jobwatch makes a few dozen distinct queries. */
const STATEMENT_CACHE_SIZE = 500;

/** How long a SQLite writer waits for another process's write lock before failing with SQLITE_BUSY. */
const SQLITE_BUSY_TIMEOUT_MS = 5000;

/**
 * Opens `url`: `sqlite:data/jobwatch.db` (relative to the working directory; the folder is created),
 * `sqlite:/abs/path.db`, `sqlite::memory:` or `mysql://user:pass@host:3306/db`. Throws an Error with
 * one line naming the accepted forms for anything else. A MySQL pool connects lazily: call ping().
 */
export function openDatabase(url: string): OpenDatabase {
  if (url.startsWith("sqlite:")) return openSqlite(url.slice("sqlite:".length));
  if (url.startsWith("mysql://")) return openMysql(url);
  throw new Error(`unsupported database URL '${redactUrl(url)}': use ${DATABASE_URL_FORMS}`);
}

function openSqlite(path: string): OpenDatabase {
  if (path === "") throw new Error(`the database URL 'sqlite:' names no file: use ${DATABASE_URL_FORMS}`);
  const memory = path === ":memory:";
  let file = path;
  if (!memory) {
    file = resolve(path);
    mkdirSync(dirname(file), { recursive: true });
  }
  const sqlite = new SqliteDatabase(file);
  if (!memory) {
    // WAL lets readers (GetJobDetails, the feed poller) run while a writer commits.
    sqlite.pragma("journal_mode = WAL");
    sqlite.pragma("synchronous = NORMAL");
    sqlite.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    // ANALYZE (and PRAGMA optimize) sample each index instead of reading all of it: milliseconds at a million jobs.
    sqlite.pragma("analysis_limit = 1000");
  }
  const prepare = statementCache(sqlite, STATEMENT_CACHE_SIZE);
  // Kysely's SQLite driver prepares every query it runs; preparing cost a fifth of GetJobDetails' CPU.
  const db = new Kysely<Database>({
    dialect: new SqliteDialect({ database: { prepare, close: () => sqlite.close() } }),
  });
  return { db, dialect: "sqlite", sqlite, prepare };
}

/**
 * better-sqlite3's prepare() with the statements kept by SQL text, the oldest dropped past `max`. A
 * statement is reusable once its run()/all() returned, which in one synchronous call it has (nothing
 * here iterates a statement lazily).
 */
function statementCache(sqlite: SqliteDatabase.Database, max: number): (sql: string) => SqliteDatabase.Statement {
  const cache = new Map<string, SqliteDatabase.Statement>();
  return (sql) => {
    let stmt = cache.get(sql);
    if (stmt === undefined) {
      stmt = sqlite.prepare(sql);
      if (cache.size >= max) cache.delete(cache.keys().next().value as string);
      cache.set(sql, stmt);
    }
    return stmt;
  };
}

function openMysql(url: string): OpenDatabase {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`malformed database URL '${redactUrl(url)}': use ${DATABASE_URL_FORMS}`);
  }
  if (parsed.pathname.replace(/^\//, "") === "") {
    throw new Error(`the database URL '${redactUrl(url)}' names no database: use mysql://user:pass@host:3306/db`);
  }
  const pool = createPool({
    uri: url,
    connectionLimit: 10,
    // BIGINT columns (times in ms, revisions, seq) come back as numbers while they fit in 2^53.
    supportBigNumbers: true,
    bigNumberStrings: false,
    charset: "utf8mb4",
  });
  pool.on("connection", closeIfReleasedInTransaction);
  const db = new Kysely<Database>({
    dialect: new MysqlDialect({
      pool,
      // READ COMMITTED: every guarantee of the store comes from conditional updates and unique keys,
      // and it avoids the gap locks that make concurrent inserts deadlock under REPEATABLE READ.
      onCreateConnection: async (connection) => {
        await connection.executeQuery(CompiledQuery.raw("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"));
      },
    }),
  });
  return { db, dialect: "mysql", pool };
}

/** BEGIN, and the COMMIT or ROLLBACK that ends a transaction (not ROLLBACK TO SAVEPOINT), as Kysely sends them. */
const TRANSACTION_START = /^\s*(begin|start transaction)\b/i;
const TRANSACTION_END = /^\s*(commit|rollback)\s*$/i;

/**
 * Makes a pool connection close, not return to the pool, when it is released inside a transaction: one whose COMMIT
 * or ROLLBACK failed. A Galera node out of the primary component refuses every statement, ROLLBACK included
 * (ER_UNKNOWN_COM_ERROR 1047), so a write cut off there left its first statements pending on a pooled connection,
 * and the next BEGIN on it, once the node was back, committed them: a job row without its change-feed event, which no
 * WatchJobs stream ever showed (found by test/guarantees, two Galera nodes killed). Closed, the server rolls it back.
 */
function closeIfReleasedInTransaction(connection: PoolConnection): void {
  let open = false;
  const query = connection.query.bind(connection) as (...args: unknown[]) => unknown;
  const release = connection.release.bind(connection);
  connection.query = ((...args: unknown[]) => {
    const text = typeof args[0] === "string" ? args[0] : undefined;
    const done = args[args.length - 1];
    if (text === undefined || typeof done !== "function") return query(...args);
    const ends = TRANSACTION_END.test(text);
    if (!ends && !TRANSACTION_START.test(text)) return query(...args);
    if (!ends) open = true;
    return query(...args.slice(0, -1), (error: unknown, ...rest: unknown[]) => {
      // Ended only by a COMMIT or ROLLBACK the server took; a failed BEGIN counts as open (closing costs a reconnect).
      if (!error && ends) open = false;
      (done as (...a: unknown[]) => void)(error, ...rest);
    });
  }) as typeof connection.query;
  connection.release = () => {
    if (!open) return release();
    open = false;
    connection.destroy();
  };
}

/** The URL with any password replaced by ***, safe for logs and error messages. */
export function redactUrl(url: string): string {
  const parts = /^([a-z][a-z0-9+.-]*:\/\/)(.*)$/is.exec(url);
  if (!parts) return url;
  let rest = parts[2] as string;
  // The user info ends at the last '@' (a password may hold an unencoded '/' or '@'); its password, if
  // any, is everything after the user's ':'.
  const at = rest.lastIndexOf("@");
  const userInfo = at < 0 ? "" : rest.slice(0, at);
  if (userInfo.includes(":")) rest = `${userInfo.slice(0, userInfo.indexOf(":"))}:***${rest.slice(at)}`;
  return parts[1] + rest.replace(/([?&](?:password|pass|pwd)=)[^&]*/gi, "$1***");
}

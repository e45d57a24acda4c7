// Throwaway databases for tests, one per test, on every dialect the run covers.
//
// API:
//   DIALECTS                  "sqlite" always; "mysql" too when JOBWATCH_TEST_MYSQL_URL is set
//                             (e.g. mysql://root@127.0.0.1:3306/test). Loop over it:
//                             `for (const dialect of DIALECTS) describe(dialect, () => ...)`.
//   freshDatabase(dialect)    a new empty database: { dialect, url, drop() }. `url` is a jobwatch database
//                             URL (pass it to createStore or the server). SQLite: a file in a new temp
//                             folder, so several stores/servers can share it. MySQL: database
//                             jobwatch_t_<random> on the server of JOBWATCH_TEST_MYSQL_URL. drop() deletes it.
//                             When JOBWATCH_TEST_MYSQL_URL is set and the server cannot be reached it THROWS:
//                             the test fails, because a skip is not a pass.
//   freshStore(dialect, o?)   freshDatabase + a migrated SqlJobStore on it: { store, database, cleanup() };
//                             cleanup() closes the store and drops the database.

import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Connection } from "mysql2/promise";
import { createConnection } from "mysql2/promise";
import { createStore } from "../../src/store/open.js";
import type { SqlJobStore, SqlJobStoreOptions } from "../../src/store/sql-job-store.js";
import { quoteIdentifier } from "../../src/store/sql-names.js";

/** A SQL dialect the tests run on. */
export type TestDialect = "sqlite" | "mysql";

/** The MySQL server tests use, if any (a URL; its database part is ignored). */
export const TEST_MYSQL_URL: string | undefined = process.env.JOBWATCH_TEST_MYSQL_URL || undefined;

/** The dialects of this run: SQLite always, MySQL when JOBWATCH_TEST_MYSQL_URL is set. */
export const DIALECTS: readonly TestDialect[] = TEST_MYSQL_URL ? ["sqlite", "mysql"] : ["sqlite"];

/** A database made for one test. */
export interface TestDatabase {
  dialect: TestDialect;
  /** jobwatch database URL of it. */
  url: string;
  /** Removes the database (and on SQLite its folder). Safe to call twice. */
  drop(): Promise<void>;
}

/** Creates a new, empty database (no tables: migrate it, or let the server do it). */
export async function freshDatabase(dialect: TestDialect): Promise<TestDatabase> {
  if (dialect === "sqlite") {
    const dir = await mkdtemp(join(tmpdir(), "jobwatch-test-"));
    return {
      dialect,
      url: `sqlite:${join(dir, "jobwatch.db")}`,
      drop: () => rm(dir, { recursive: true, force: true }),
    };
  }
  if (!TEST_MYSQL_URL)
    throw new Error("the mysql dialect needs JOBWATCH_TEST_MYSQL_URL (e.g. mysql://root@127.0.0.1:3306/test)");
  const name = `jobwatch_t_${randomBytes(6).toString("hex")}`;
  const server = await mysqlServer();
  try {
    await server.query(`CREATE DATABASE ${quoteIdentifier("mysql", name)} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  } finally {
    await server.end();
  }
  const url = new URL(TEST_MYSQL_URL);
  url.pathname = `/${name}`;
  return {
    dialect,
    url: url.toString(),
    async drop() {
      const conn = await mysqlServer();
      try {
        await conn.query(`DROP DATABASE IF EXISTS ${quoteIdentifier("mysql", name)}`);
      } finally {
        await conn.end();
      }
    },
  };
}

/** A migrated store on a fresh database, and how to get rid of both. */
export async function freshStore(
  dialect: TestDialect,
  options: SqlJobStoreOptions = {},
): Promise<{ store: SqlJobStore; database: TestDatabase; cleanup(): Promise<void> }> {
  const database = await freshDatabase(dialect);
  const store = createStore(database.url, options);
  try {
    await store.migrate();
  } catch (error) {
    await store.close();
    await database.drop();
    throw error;
  }
  return {
    store,
    database,
    async cleanup() {
      await store.close();
      await database.drop();
    },
  };
}

/** A connection to the MySQL server of JOBWATCH_TEST_MYSQL_URL with no database selected. */
async function mysqlServer(): Promise<Connection> {
  const url = new URL(TEST_MYSQL_URL!);
  try {
    return await createConnection({
      host: url.hostname,
      port: url.port === "" ? 3306 : Number(url.port),
      user: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
      connectTimeout: 5000,
    });
  } catch (error) {
    throw new Error(
      `JOBWATCH_TEST_MYSQL_URL is set but MySQL at ${url.host} cannot be reached: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

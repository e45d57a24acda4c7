// Opening a store by database URL: as it is (createStore), or checked, migrated and guarded for use (openStore).
import { openDatabase, redactUrl } from "./connect.js";
import type { GuardedStore } from "./guarded-store.js";
import { guardStore } from "./guarded-store.js";
import type { SqlJobStoreOptions } from "./sql-job-store.js";
import { SqlJobStore } from "./sql-job-store.js";
import { quoteIdentifier } from "./sql-names.js";
import { probeWrite } from "./write-probe.js";

/** Opens `url` and returns a store on it, nothing checked yet (call migrate() before use). */
export function createStore(url: string, options: SqlJobStoreOptions = {}): SqlJobStore {
  return new SqlJobStore(openDatabase(url), options);
}

/**
 * Opens the database at `url`, checks that it answers and applies pending migrations, and guards the
 * store (guarded-store.ts: storage faults become UnavailableError). Errors carry one line that names
 * the (redacted) URL and the cause. Returns the guarded store and its storage faults (for health).
 */
export async function openStore(url: string, options: SqlJobStoreOptions = {}): Promise<GuardedStore> {
  // Startup errors name the driver's cause (the address, the refused login); calls get guarded errors.
  const open = openDatabase(url);
  const store = new SqlJobStore(open, options);
  try {
    await store.ping();
  } catch (error) {
    await store.close().catch(() => undefined);
    throw new Error(missingDatabase(url, error) ?? `cannot reach the database at ${redactUrl(url)}: ${causeOf(error)}`);
  }
  try {
    await store.migrate();
  } catch (error) {
    await store.close().catch(() => undefined);
    throw new Error(`cannot migrate the database at ${redactUrl(url)}: ${causeOf(error)}`);
  }
  return guardStore(store, { probeWrite: () => probeWrite(open) });
}

/**
 * A MySQL server that answered but has no database of the URL's name (ER_BAD_DB_ERROR): that it does not
 * exist and how to create it, instead of "cannot reach". Undefined for any other error.
 */
function missingDatabase(url: string, error: unknown): string | undefined {
  const first = error instanceof AggregateError && error.errors.length > 0 ? error.errors[0] : error;
  if ((first as { code?: unknown } | undefined)?.code !== "ER_BAD_DB_ERROR") return undefined;
  const parsed = new URL(url);
  const name = decodeURIComponent(parsed.pathname.replace(/^\//, ""));
  const quoted = quoteIdentifier("mysql", name);
  return (
    `the database '${name}' does not exist on the MySQL server at ${parsed.host}: create it (e.g. mysql -h ${parsed.hostname} ` +
    `-P ${parsed.port || "3306"} -u ${decodeURIComponent(parsed.username) || "root"} -p -e 'CREATE DATABASE ${quoted}'), ` +
    "then start again: jobwatch creates its tables itself"
  );
}

/** One line saying why a database call failed: the first of several, with the driver's code. */
function causeOf(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return causeOf(error.errors[0]);
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" && !error.message.includes(code) ? `${code} ${error.message}` : error.message;
  }
  return String(error);
}

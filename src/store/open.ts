// Opening a store by database URL: as it is (createStore), or checked, migrated and guarded for use (openStore).
import { openDatabase, redactUrl } from "./connect.js";
import { SqlJobStore } from "./sql-job-store.js";
import type { SqlJobStoreOptions } from "./sql-job-store.js";
import { guardStore } from "./guarded-store.js";
import type { GuardedStore } from "./guarded-store.js";
import { probeWrite } from "./write-probe.js";

/** Opens `url` and returns a store on it, nothing checked yet (call migrate() before use). */
export function createStore(url: string, options: SqlJobStoreOptions = {}): SqlJobStore {
  return new SqlJobStore(openDatabase(url), options);
}

/**
 * Opens the database at `url`, checks that it answers and applies pending migrations, and guards the
 * store (guarded-store.ts: storage faults become UnavailableError). Errors carry one line that names
 * the (redacted) URL and the cause.
 */
export async function openStore(url: string, options: SqlJobStoreOptions = {}): Promise<GuardedStore> {
  // Startup errors name the driver's cause (the address, the refused login); calls get guarded errors.
  const open = openDatabase(url);
  const store = new SqlJobStore(open, options);
  try {
    await store.ping();
  } catch (error) {
    await store.close().catch(() => undefined);
    throw new Error(`cannot reach the database at ${redactUrl(url)}: ${causeOf(error)}`);
  }
  try {
    await store.migrate();
  } catch (error) {
    await store.close().catch(() => undefined);
    throw new Error(`cannot migrate the database at ${redactUrl(url)}: ${causeOf(error)}`);
  }
  return guardStore(store, { probeWrite: () => probeWrite(open) });
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

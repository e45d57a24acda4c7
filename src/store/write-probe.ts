// A harmless write that fails exactly when jobwatch's writes would: health uses it to see the write path recover.
import { randomUUID } from "node:crypto";
import type { OpenDatabase } from "./connect.js";

/** The probe row's payload: larger than a SQLite page, so the write must allocate pages (a full disk says no). */
const PROBE_BYTES = 8192;

/** Thrown inside the probe's transaction to roll it back; never escapes. */
class ProbeRollback extends Error {}

/**
 * Inserts a job_events row (an unknown job id, revision 0, a payload of PROBE_BYTES) and rolls the
 * transaction back, so nobody ever sees it. It fails like a real write when the database file is
 * read-only, the disk (or the page limit) is full, the server is read-only or a Galera node is not in
 * the primary component. On SQLite it runs synchronously on the raw handle, as the store's own writes
 * do, so none of them can slip into its transaction and be rolled back with it.
 */
export async function probeWrite(open: OpenDatabase): Promise<void> {
  const insert = open.db
    .insertInto("job_events")
    .values({
      job_id: randomUUID(),
      revision: 0,
      at: Date.now(),
      status: "probe",
      progress: 0,
      phase: null,
      detail: null,
      cancel_requested: 0,
      error: null,
      recorded: 0,
      snapshot: "x".repeat(PROBE_BYTES),
    })
    .compile();
  try {
    if (open.dialect === "sqlite") {
      const sqlite = open.sqlite;
      sqlite
        .transaction(() => {
          sqlite.prepare(insert.sql).run(insert.parameters as unknown[]);
          throw new ProbeRollback();
        })
        .immediate();
    } else {
      await open.db.transaction().execute(async (trx) => {
        await trx.executeQuery(insert);
        throw new ProbeRollback();
      });
    }
  } catch (error) {
    if (!(error instanceof ProbeRollback)) throw error;
  }
}

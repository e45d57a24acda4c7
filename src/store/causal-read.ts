// Causal reads on a Galera cluster: a SELECT that sees every write committed on any node before it started.

import { setTimeout as sleep } from "node:timers/promises";
import type { Compilable, Kysely } from "kysely";
import { CompiledQuery } from "kysely";
import type { Dialect } from "./connect.js";
import type { Database } from "./database.js";
import { isTransient, jitteredBackoff, lostRace } from "./lost-race.js";

/**
 * Runs SELECTs that must see every write the cluster committed before them. Galera certifies a
 * commit on every node at once but applies it on the others a moment later, so a plain read through
 * node 3 right after a commit through node 1 can miss it (measured: StartJob after CreateJob through
 * another node, NOT_FOUND 8 times in 300). `wsrep_sync_wait=1` makes one statement wait until the node
 * has applied everything committed before it; only the reads whose answer would otherwise be wrong
 * pay for it (see jobs.ts): a global setting halved the throughput on a contended job.
 * On one MySQL server and on SQLite every read is causal already, and a causal read is a plain one.
 */
export interface CausalReader {
  /** True when this database is a Galera node (wsrep_on), so causal reads differ from plain ones. */
  isGalera(): Promise<boolean>;
  /** isGalera's answer without waiting, once it is known (at once on SQLite); undefined before. */
  knownGalera(): boolean | undefined;
  /** Runs the SELECT causally (on Galera with wsrep_sync_wait for this statement only). */
  select<R>(query: Compilable<R>): Promise<R[]>;
}

/** A CausalReader on `kysely`; detects Galera with the first call that needs to know, once. */
export function causalReader(kysely: Kysely<Database>, dialect: Dialect): CausalReader {
  let galera: Promise<boolean> | undefined;
  let known: boolean | undefined = dialect === "mysql" ? undefined : false;
  const isGalera = (): Promise<boolean> => {
    if (dialect !== "mysql") return Promise.resolve(false);
    galera ??= kysely
      // MySQL without the wsrep patches has no such variable and refuses the statement: not Galera.
      .executeQuery<{ on: number | string | null; version: string }>(
        CompiledQuery.raw("select @@wsrep_on as `on`, version() as `version`"),
      )
      .then(
        (r) => {
          const row = r.rows[0];
          // SET STATEMENT is MariaDB's; other Galera builds (Percona XtraDB Cluster) are not supported here.
          known = row !== undefined && Number(row.on) === 1 && /mariadb/i.test(row.version);
          return known;
        },
        (error: unknown) => {
          if ((error as { code?: unknown }).code === "ER_UNKNOWN_SYSTEM_VARIABLE") {
            known = false;
            return false;
          }
          galera = undefined; // a failed connection: ask again next time
          throw error;
        },
      );
    return galera;
  };
  return {
    isGalera,
    knownGalera: () => known,
    async select<R>(query: Compilable<R>): Promise<R[]> {
      const compiled = query.compile();
      if (!(await isGalera())) return (await kysely.executeQuery(compiled)).rows;
      const causal = CompiledQuery.raw(`SET STATEMENT wsrep_sync_wait=1 FOR ${compiled.sql}`, [...compiled.parameters]);
      // A causal SELECT that a replicated writeset aborts fails with ER_LOCK_DEADLOCK (Galera's brute-force abort
      // of a conflicting local statement): nothing was written, so it is asked again. Before, the read's caller
      // answered INTERNAL (test:guarantees, SIGSTOP profile: GetJob through a node catching up).
      for (let attempt = 1; ; attempt++) {
        try {
          return (await kysely.executeQuery<R>(causal)).rows;
        } catch (error) {
          if (!isTransient(error)) throw error;
          // Out of attempts: ABORTED (try again), not the raw deadlock, which reached the client as INTERNAL.
          if (attempt >= CAUSAL_READ_ATTEMPTS) throw lostRace(error, "the read was aborted each time");
          await sleep(jitteredBackoff(attempt, CAUSAL_READ_BACKOFF));
        }
      }
    },
  };
}

/** How many times a causal read aborted as a deadlock is run before the caller gets ABORTED. */
const CAUSAL_READ_ATTEMPTS = 6;
/** The pauses between them (full jitter, the ceiling doubling from 10 ms to 160 ms). */
const CAUSAL_READ_BACKOFF = { baseMs: 10, capMs: 160 } as const;

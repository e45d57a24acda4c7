// A jobwatch server that can be stopped and started again on the same port and database, for restart tests.
//
// API:
//   startReplica(owner, listen?)   a server (own store, hub, authenticator) on the database of `owner`
//                                  (a TestServer), listening on `listen` (default 127.0.0.1:0). Its tokens
//                                  are the owner's. stop({ kill }) ends it without touching the database:
//                                  gracefully (watchers get UNAVAILABLE) or, with kill, by dropping every
//                                  connection at once as a crashed process would. Start another replica on
//                                  the same `address` to play a restart.
import pino from "pino";
import { OpaqueTokenAuthenticator } from "../../src/auth/opaque-token-authenticator.js";
import { createServer } from "../../src/server/server.js";
import { openDatabase } from "../../src/store/connect.js";
import { guardStore } from "../../src/store/guarded-store.js";
import { SqlJobStore } from "../../src/store/sql-job-store.js";
import { probeWrite } from "../../src/store/write-probe.js";
import { Watches } from "../../src/watch/watches.js";
import type { TestServer } from "./server.js";

/** A server started by startReplica. */
export interface Replica {
  /** "127.0.0.1:<port>". */
  readonly address: string;
  /** Shuts it down; `kill` drops connections without a goodbye. The database is left as it is. */
  stop(options?: { kill?: boolean }): Promise<void>;
}

const silent = pino({ level: process.env.JOBWATCH_TEST_LOG_LEVEL ?? "silent" });

/** Starts a server on the owner's database (see the file header). */
export async function startReplica(owner: TestServer, listen = "127.0.0.1:0"): Promise<Replica> {
  const open = openDatabase(owner.database.url);
  const realStore = new SqlJobStore(open);
  await realStore.migrate();
  const guarded = guardStore(realStore, { probeWrite: () => probeWrite(open) });
  const store = guarded.store;
  const authenticator = new OpaqueTokenAuthenticator({ store, log: silent });
  await authenticator.start();
  const hub = new Watches({ store, pollMs: 50, log: silent });
  await hub.start();
  const server = createServer({ store, faults: guarded, hub, authenticator, log: silent });
  const address = await server.listen(listen);
  let stopped: Promise<void> | undefined;
  return {
    address,
    stop(options = {}) {
      stopped ??= (async () => {
        if (options.kill) server.grpcServer.forceShutdown();
        await server.shutdown(options.kill ? 0 : 2000);
        await authenticator.stop();
        await store.close();
      })();
      return stopped;
    },
  };
}

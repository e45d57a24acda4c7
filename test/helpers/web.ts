// A whole jobwatch service (startService, as `jobwatch serve` runs it) with the web dashboard on, over a
// fresh database with tokens for alice, bob, an admin and a worker; restartable on the same ports.
//
// API:
//   startWebService({ dialect, env })   serve gRPC and the dashboard on 127.0.0.1:0; `env` adds settings
//   web.url                             http://127.0.0.1:<port> of the dashboard
//   web.worker / web.client(token)      jobwatch client library clients of its gRPC port
//   web.stop() / web.start()            stop the service and start it again on the same ports and database
//   web.close()                         stop, close clients, drop the database
import { pino } from "pino";
import { createToken } from "../../src/auth/token-admin.js";
import type { JobwatchClient } from "../../src/client/index.js";
import { createClient } from "../../src/client/index.js";
import { loadConfig } from "../../src/config.js";
import type { Service } from "../../src/main.js";
import { startService } from "../../src/main.js";
import { openDatabase } from "../../src/store/connect.js";
import { SqlJobStore } from "../../src/store/sql-job-store.js";
import type { TestDatabase, TestDialect } from "./databases.js";
import { freshDatabase } from "./databases.js";

/** The tokens of a web test service. */
export interface WebTokens {
  alice: string;
  bob: string;
  admin: string;
  worker: string;
}

/** A running service with its dashboard (see the file header). */
export interface WebService {
  url: string;
  grpcAddress: string;
  tokens: WebTokens;
  database: TestDatabase;
  /** A client of the gRPC port with the worker's token. */
  worker: JobwatchClient;
  /** A client of the gRPC port with `token`, closed by close(). */
  client(token: string): JobwatchClient;
  /** Another replica (gRPC only) on the same database, for writes while this one is down. */
  replica(): Promise<{ worker: JobwatchClient; stop(): Promise<void> }>;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

const silent = pino({ level: process.env.JOBWATCH_TEST_LOG_LEVEL ?? "silent" });

/** Starts the service (see the file header). */
export async function startWebService(
  options: { dialect?: TestDialect; env?: Record<string, string> } = {},
): Promise<WebService> {
  const database = await freshDatabase(options.dialect ?? "sqlite");
  const store = new SqlJobStore(openDatabase(database.url));
  await store.migrate();
  const make = async (user: string, role: string) => (await createToken(store, { user, role })).token;
  const tokens: WebTokens = {
    alice: await make("alice", "normal_user"),
    bob: await make("bob", "normal_user"),
    admin: await make("admin", "admin"),
    worker: await make("worker", "service"),
  };
  await store.close();

  const env = (listen: string, web: string | undefined) => ({
    JOBWATCH_DATABASE_URL: database.url,
    JOBWATCH_LISTEN: listen,
    JOBWATCH_ACCESS_LOG: "off",
    JOBWATCH_WATCH_POLL_MS: "50",
    ...(web === undefined ? {} : { JOBWATCH_WEB_LISTEN: web }),
    ...options.env,
  });
  let service: Service | undefined = await startService(loadConfig(env("127.0.0.1:0", "127.0.0.1:0")), silent);
  const grpcAddress = service.address;
  const webAddress = service.webAddress!;
  const clients: JobwatchClient[] = [];
  const client = (token: string): JobwatchClient => {
    const c = createClient({ address: grpcAddress, token });
    clients.push(c);
    return c;
  };
  const worker = client(tokens.worker);
  return {
    url: `http://${webAddress}`,
    grpcAddress,
    tokens,
    database,
    worker,
    client,
    async replica() {
      const other = await startService(loadConfig(env("127.0.0.1:0", undefined)), silent);
      const c = createClient({ address: other.address, token: tokens.worker });
      return {
        worker: c,
        stop: async () => {
          c.close();
          await other.stop();
        },
      };
    },
    async stop() {
      await service?.stop();
      service = undefined;
    },
    async start() {
      service = await startService(loadConfig(env(grpcAddress, webAddress)), silent);
    },
    async close() {
      for (const c of clients) c.close();
      await service?.stop();
      await database.drop();
    },
  };
}

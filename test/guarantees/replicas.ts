// jobwatch replicas for the guarantees run: real `jobwatch serve` processes (kill -9 and restart on the same port),
// or servers in this process whose SQLite connection can be made to refuse writes.
//
// API:
//   prepareDatabase(url)               migrates the database and makes the run's tokens (admin, alice)
//   spawnReplica(name, url, env?)      `jobwatch serve` on 127.0.0.1:0 over `url`; kill() is SIGKILL, restart()
//                                      starts it again on the same port, stop() is SIGTERM (graceful)
//   inProcessReplicas(dialect, n)      n servers in this process over a new database (test/helpers/server.ts), with
//                                      readOnly(on): their connections refuse every write, as a read-only file does
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { sql } from "kysely";
import { createToken } from "../../src/auth/token-admin.js";
import { openDatabase } from "../../src/store/connect.js";
import { SqlJobStore } from "../../src/store/sql-job-store.js";
import { cliCommand } from "../helpers/cli.js";
import type { TestDialect } from "../helpers/databases.js";
import type { TestServer } from "../helpers/server.js";
import { startTestServer } from "../helpers/server.js";

/** A jobwatch server of the run. */
export interface Replica {
  readonly name: string;
  /** "127.0.0.1:<port>", the same across restarts. */
  readonly address: string;
  /** kill -9 (a process) or a forced shutdown that drops every connection (in this process). */
  kill(): Promise<void>;
  /** Starts it again on the same port and database. */
  restart(): Promise<void>;
  /** Graceful stop. */
  stop(): Promise<void>;
  /** The error lines of its log (a process's: level error and above), to show next to violations. */
  readonly errors: readonly string[];
}

/** The tokens a run uses: admin drives and watches everything; alice watches her own jobs. */
export interface RunTokens {
  admin: string;
  alice: string;
}

/** Migrates the database at `url` and makes the run's tokens. */
export async function prepareDatabase(url: string): Promise<RunTokens> {
  const store = new SqlJobStore(openDatabase(url));
  try {
    await store.migrate();
    return {
      admin: (await createToken(store, { user: "admin", role: "admin" })).token,
      alice: (await createToken(store, { user: "alice", role: "normal_user" })).token,
    };
  } finally {
    await store.close();
  }
}

/** Settings every replica of the run gets: a short feed poll, no access log, caps fit for the run's watchers. */
const BASE_ENV: Record<string, string> = {
  JOBWATCH_WATCH_POLL_MS: "50",
  JOBWATCH_ACCESS_LOG: "off",
  JOBWATCH_LOG_FORMAT: "json",
  JOBWATCH_LOG_LEVEL: "info",
  JOBWATCH_MAX_WATCHES_PER_USER: "1000",
  JOBWATCH_BOOKMARK_INTERVAL: "2s",
};

/** With GUARANTEES_LOG_DIR set, every replica logs at debug level, appended to DIR/NAME.log (to follow a violation). */
const LOG_DIR = process.env.GUARANTEES_LOG_DIR;

/** Starts `jobwatch serve` over `url` (see the file header). */
export async function spawnReplica(name: string, url: string, env: Record<string, string> = {}): Promise<Replica> {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let address = "127.0.0.1:0";
  const errors: string[] = [];
  const launch = async (): Promise<void> => {
    const line = cliCommand(["serve", "--database-url", url, "--listen", address]);
    const proc = spawn(line.command, line.args, {
      env: {
        ...process.env,
        ...BASE_ENV,
        ...(LOG_DIR ? { JOBWATCH_LOG_LEVEL: "debug" } : {}),
        ...env,
        JOBWATCH_TOKEN: undefined,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    if (LOG_DIR) proc.stdout!.pipe(createWriteStream(`${LOG_DIR}/${name}.log`, { flags: "a" }));
    child = proc;
    exited = new Promise((resolve) => proc.once("exit", () => resolve()));
    let out = "";
    let err = "";
    proc.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      err = (err + chunk).slice(-4000);
    });
    let partial = "";
    proc.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? "";
      for (const l of lines) if (/^\{"level":(50|60)/.test(l) && errors.length < 50) errors.push(l);
    });
    address = await new Promise<string>((resolve, reject) => {
      proc.stdout!.on("data", (chunk: string) => {
        out += chunk;
        const serving = /"address":"([^"]+)"[^\n]*"msg":"jobwatch is serving"/.exec(out);
        if (serving) {
          out = "";
          resolve(serving[1]!);
        } else if (out.length > 100_000) out = out.slice(-10_000);
      });
      void exited.then(() => reject(new Error(`replica ${name} exited before serving: ${err}`)));
    });
  };
  await launch();
  return {
    name,
    get address() {
      return address;
    },
    async kill() {
      child?.kill("SIGKILL");
      await exited;
    },
    restart: launch,
    async stop() {
      child?.kill("SIGTERM");
      await exited;
    },
    errors,
  };
}

/** Two or more servers in this process over one new SQLite or MySQL database, as test/helpers/server.ts starts them. */
export async function inProcessReplicas(
  dialect: TestDialect,
  n: number,
): Promise<{ replicas: Replica[]; tokens: RunTokens; readOnly(on: boolean): Promise<void>; stop(): Promise<void> }> {
  const options = { healthIntervalMs: 500, maxWatchesPerUser: 1000, bookmarkMs: 2000 };
  const first = await startTestServer({ dialect, ...options });
  const servers: TestServer[] = [first];
  for (let i = 1; i < n; i++) servers.push(await startTestServer({ sharing: first, ...options }));
  const replicas = servers.map(
    (s, i): Replica => ({
      name: `replica-${i + 1}`,
      address: s.address,
      kill: () => Promise.reject(new Error("an in-process replica cannot be killed")),
      restart: () => Promise.reject(new Error("an in-process replica cannot be restarted")),
      stop: () => s.stop(),
      errors: [],
    }),
  );
  return {
    replicas,
    tokens: { admin: first.tokens.admin, alice: first.tokens.alice },
    // Each server's own connection refuses every write, as a read-only database file does (SQLITE_READONLY).
    readOnly: async (on) => {
      for (const s of servers) await sql.raw(`pragma query_only = ${on ? "on" : "off"}`).execute(s.store.db);
    },
    // The sharing servers first: the first one drops the database.
    stop: async () => {
      for (const s of servers.slice(1)) await s.stop();
      await first.stop();
    },
  };
}

// jobwatch replicas for the guarantees run: real `jobwatch serve` processes (kill -9 and restart on the same port),
// or servers in this process whose SQLite connection can be made to refuse writes.
//
// API:
//   prepareDatabase(url)               migrates the database and makes the run's tokens (admin, alice)
//   spawnReplica(name, url, env?)      `jobwatch serve` on 127.0.0.1:0 over `url`; kill() is SIGKILL, restart()
//                                      starts it again on the same port, stop() is SIGTERM (graceful)
//   inProcessReplica(name, url, env?)  the same server assembled in this process (as test/helpers/replica.ts), with
//                                      readOnly(on): its connection refuses every write, as a read-only file does
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { sql } from "kysely";
import pino from "pino";
import { Authenticator } from "../../src/auth/authenticator.js";
import { createToken } from "../../src/auth/token-admin.js";
import { loadConfig } from "../../src/config.js";
import { createServer } from "../../src/server/server.js";
import { openDatabase } from "../../src/store/connect.js";
import { guardStore } from "../../src/store/guarded-store.js";
import { SqlJobStore } from "../../src/store/sql-job-store.js";
import { probeWrite } from "../../src/store/write-probe.js";
import { WatchHub } from "../../src/watch/watch-hub.js";
import { cliCommand } from "../helpers/cli.js";

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
  /** In-process replicas only: the database connection refuses (on) or takes (off) writes. */
  readOnly?(on: boolean): Promise<void>;
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

/** Starts `jobwatch serve` over `url` (see the file header). */
export async function spawnReplica(name: string, url: string, env: Record<string, string> = {}): Promise<Replica> {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let address = "127.0.0.1:0";
  const launch = async (): Promise<void> => {
    const line = cliCommand(["serve", "--database-url", url, "--listen", address]);
    const proc = spawn(line.command, line.args, {
      env: { ...process.env, ...BASE_ENV, ...env, JOBWATCH_TOKEN: undefined },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = proc;
    exited = new Promise((resolve) => proc.once("exit", () => resolve()));
    let out = "";
    let err = "";
    proc.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      err = (err + chunk).slice(-4000);
    });
    address = await new Promise<string>((resolve, reject) => {
      proc.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
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
  };
}

const silent = pino({ level: process.env.JOBWATCH_TEST_LOG_LEVEL ?? "silent" });

/** The same server assembled in this process (see the file header); `env` as a replica process reads it. */
export async function inProcessReplica(name: string, url: string, env: Record<string, string> = {}): Promise<Replica> {
  const config = loadConfig({ ...BASE_ENV, ...env, JOBWATCH_DATABASE_URL: url });
  let address = "127.0.0.1:0";
  let running: { stop(kill: boolean): Promise<void>; readOnly(on: boolean): Promise<void> } | undefined;
  const launch = async (): Promise<void> => {
    const open = openDatabase(url);
    const raw = new SqlJobStore(open);
    const store = guardStore(raw, { probeWrite: () => probeWrite(open) });
    const authenticator = new Authenticator({ store, log: silent });
    await authenticator.start();
    const hub = new WatchHub({ store, pollMs: config.watchPollMs, log: silent, bookmarkMs: config.bookmarkIntervalMs });
    await hub.start();
    const server = createServer({
      store,
      hub,
      authenticator,
      log: silent,
      healthIntervalMs: 500,
      streamLimits: { perUser: config.maxWatchesPerUser, total: config.maxWatches },
    });
    address = await server.listen(address);
    running = {
      async stop(kill) {
        if (kill) server.grpcServer.forceShutdown();
        await server.shutdown(kill ? 0 : 2000);
        await authenticator.stop();
        await raw.close();
      },
      readOnly: (on) =>
        sql
          .raw(`pragma query_only = ${on ? "on" : "off"}`)
          .execute(raw.db)
          .then(() => undefined),
    };
  };
  await launch();
  return {
    name,
    get address() {
      return address;
    },
    kill: () => running!.stop(true),
    restart: launch,
    stop: () => running!.stop(false),
    readOnly: (on) => running!.readOnly(on),
  };
}

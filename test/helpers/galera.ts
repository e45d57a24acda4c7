// The Galera cluster of `npm run test:galera` from a test: its nodes, a jobwatch server per node, killing and restarting nodes.
//
// API:
//   GALERA_NODES              the nodes' base URLs (mysql://root@127.0.0.1:3306N/), from JOBWATCH_TEST_GALERA_NODES,
//                             which scripts/test-galera.sh sets after starting scripts/galera-cluster.sh
//   freshClusterDatabase()    a new empty database on the cluster: { urls (one per node), drop() }
//   startNodeServer(url)      a jobwatch server as `serve` builds it (guarded store, hub, authenticator,
//                             health) over one node: { address, raw store, hub, server, stop() }
//   killNode(n) / restartNode(n)   scripts/galera-cluster.sh kill-node / restart-node (1-based)
//   recoverCluster()          scripts/galera-cluster.sh recover: after the majority was lost, the most advanced
//                             node becomes the primary component and the others rejoin it
//   isolateNode(n, on)        cuts node n off the cluster's group communication (gmcast.isolate), so it
//                             leaves the primary component (non-Primary, wsrep_ready=OFF) while its server
//                             keeps answering; off, it rejoins
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createConnection } from "mysql2/promise";
import pino from "pino";
import { OpaqueTokenAuthenticator } from "../../src/auth/opaque-token-authenticator.js";
import type { JobwatchServer } from "../../src/server/server.js";
import { createServer } from "../../src/server/server.js";
import { openDatabase } from "../../src/store/connect.js";
import { guardStore } from "../../src/store/guarded-store.js";
import { SqlJobStore } from "../../src/store/sql-job-store.js";
import { quoteIdentifier } from "../../src/store/sql-names.js";
import type { JobStore } from "../../src/store/store.js";
import { probeWrite } from "../../src/store/write-probe.js";
import { Watches } from "../../src/watch/watches.js";

const SCRIPT = fileURLToPath(new URL("../../scripts/galera-cluster.sh", import.meta.url));

/** The cluster's nodes (see the file header). */
export const GALERA_NODES: readonly string[] = (process.env.JOBWATCH_TEST_GALERA_NODES ?? "")
  .split(",")
  .filter((u) => u !== "");

const silent = pino({ level: process.env.JOBWATCH_TEST_LOG_LEVEL ?? "silent" });

/** A database made on the cluster for one test file. */
export interface ClusterDatabase {
  /** The database's URL on each node, in node order. */
  urls: string[];
  drop(): Promise<void>;
}

/** Creates an empty database (replicated to every node) and returns its URL on each node. */
export async function freshClusterDatabase(): Promise<ClusterDatabase> {
  if (GALERA_NODES.length < 3) {
    throw new Error("no Galera cluster: run these tests with `npm run test:galera` (it starts one)");
  }
  const name = `jobwatch_g_${randomBytes(6).toString("hex")}`;
  const first = new URL(GALERA_NODES[0]!);
  const admin = async <T>(run: (c: Awaited<ReturnType<typeof createConnection>>) => Promise<T>): Promise<T> => {
    const c = await createConnection({ host: first.hostname, port: Number(first.port), user: "root" });
    try {
      return await run(c);
    } finally {
      await c.end();
    }
  };
  await admin((c) =>
    c.query(`CREATE DATABASE ${quoteIdentifier("mysql", name)} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`),
  );
  return {
    urls: GALERA_NODES.map((base) => new URL(name, base).toString()),
    drop: () =>
      admin((c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdentifier("mysql", name)}`)).then(() => undefined),
  };
}

/** A jobwatch server over one node. */
export interface NodeServer {
  readonly address: string;
  /** The store without the guard, for setting up and reading back. */
  readonly raw: SqlJobStore;
  readonly store: JobStore;
  readonly hub: Watches;
  readonly server: JobwatchServer;
  stop(): Promise<void>;
}

/** Migrates the database at `url` and starts a server on it, as `serve` does. */
export async function startNodeServer(
  url: string,
  options: { healthIntervalMs?: number; pollMs?: number } = {},
): Promise<NodeServer> {
  const open = openDatabase(url);
  const raw = new SqlJobStore(open);
  await raw.migrate();
  const guarded = guardStore(raw, { probeWrite: () => probeWrite(open) });
  const store = guarded.store;
  const authenticator = new OpaqueTokenAuthenticator({ store, log: silent });
  await authenticator.start();
  const hub = new Watches({ store, pollMs: options.pollMs ?? 50, log: silent });
  await hub.start();
  const server = createServer({
    store,
    faults: guarded,
    hub,
    authenticator,
    log: silent,
    healthIntervalMs: options.healthIntervalMs,
  });
  const address = await server.listen("127.0.0.1:0");
  let stopped: Promise<void> | undefined;
  return {
    address,
    raw,
    store,
    hub,
    server,
    stop() {
      stopped ??= (async () => {
        await server.shutdown(2000);
        await authenticator.stop();
        await raw.close();
      })();
      return stopped;
    },
  };
}

const run = promisify(execFile);

/** kill -9 of node n's mariadbd. */
export async function killNode(n: number): Promise<void> {
  await run(SCRIPT, ["kill-node", String(n)]);
}

/** Restarts node n (it catches up by IST) and waits until it is Synced. */
export async function restartNode(n: number): Promise<void> {
  await run(SCRIPT, ["restart-node", String(n)], { timeout: 180_000 });
}

/**
 * After the cluster lost its majority: makes the most advanced node (by committed position) the primary component
 * and rejoins the others to it (scripts/galera-cluster.sh recover). `onStep` gets what it saw and did as it goes
 * ("positions: node1 non-Primary 123, node2 stopped 125, ...", "node2 (at 125, the most advanced) started as ...").
 */
export async function recoverCluster(onStep: (line: string) => void = () => undefined): Promise<void> {
  const child = spawn(SCRIPT, ["recover"], { stdio: ["ignore", "ignore", "pipe"], timeout: 600_000 });
  const lines: string[] = [];
  createInterface({ input: child.stderr }).on("line", (raw) => {
    const line = raw.replace(/^galera-cluster: /, "");
    lines.push(line);
    if (/^positions:|primary component|stopped: it is behind/.test(line)) onStep(line);
  });
  const [code] = (await once(child, "close")) as [number | null];
  if (code !== 0) throw new Error(`galera-cluster.sh recover failed (${code}):\n${lines.join("\n")}`);
}

/** Isolates node n from (or rejoins it to) the others; see the file header. */
export async function isolateNode(n: number, on: boolean): Promise<void> {
  const url = new URL(GALERA_NODES[n - 1]!);
  const c = await createConnection({ host: url.hostname, port: Number(url.port), user: "root" });
  try {
    await c.query(`SET GLOBAL wsrep_provider_options='gmcast.isolate=${on ? 1 : 0}'`);
  } finally {
    await c.end();
  }
}

// `npm run bench:galera`: what running on a 3-node Galera cluster costs, against one MariaDB server in the same run.
// Throughput of GetJobDetails and ReportProgress through one replica (MariaDB; Galera node 1) and three (one per
// node), the cross-replica watch lag, the cost of a causal read, and the rows the change feed reads per new entry.
// Needs the cluster (scripts/with-galera.sh starts it) and MariaDB at JOBWATCH_TEST_MYSQL_URL (default 127.0.0.1:3306).
import { randomBytes } from "node:crypto";
import { availableParallelism, loadavg } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { createConnection } from "mysql2/promise";
import { createToken } from "../src/auth/token-admin.js";
import type { JobwatchClient } from "../src/client/index.js";
import { createClient } from "../src/client/index.js";
import { causalReader } from "../src/store/causal-read.js";
import { quoteIdentifier } from "../src/store/sql-names.js";
import type { FeedEntry, SeqRange } from "../src/store/store.js";
import { ChangeFeed } from "../src/watch/change-feed.js";
import type { NodeServer } from "../test/helpers/galera.js";
import { freshClusterDatabase, GALERA_NODES, startNodeServer } from "../test/helpers/galera.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = 20;
/** The change-feed poll interval of `serve` (JOBWATCH_WATCH_POLL_MS default). */
const POLL_MS = 200;
const MARIADB = process.env.JOBWATCH_TEST_MYSQL_URL || "mysql://root@127.0.0.1:3306/";

/** Calls per second of `op`, CONCURRENCY at a time for SECONDS (after a short warm-up). */
async function throughput(op: (i: number) => Promise<unknown>): Promise<number> {
  let stop = false;
  let n = 0;
  let counting = false;
  const loops = Array.from({ length: CONCURRENCY }, async (_, i) => {
    while (!stop) {
      await op(i);
      if (counting) n++;
    }
  });
  await sleep(500);
  counting = true;
  const started = performance.now();
  await sleep(SECONDS * 1000);
  counting = false;
  const elapsed = (performance.now() - started) / 1000;
  stop = true;
  await Promise.all(loops);
  return n / elapsed;
}

/** A database on the standalone MariaDB, dropped by the returned function. */
async function mariadbDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const base = new URL(MARIADB);
  const name = `jobwatch_b_${randomBytes(6).toString("hex")}`;
  const admin = () =>
    createConnection({ host: base.hostname, port: Number(base.port || 3306), user: decodeURIComponent(base.username) });
  const c = await admin();
  await c.query(`CREATE DATABASE ${quoteIdentifier("mysql", name)} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  await c.end();
  base.pathname = `/${name}`;
  return {
    url: base.toString(),
    async drop() {
      const d = await admin();
      await d.query(`DROP DATABASE IF EXISTS ${quoteIdentifier("mysql", name)}`);
      await d.end();
    },
  };
}

/** Figures of one deployment. */
interface Figures {
  getJob: number;
  progress: number;
  contended: number;
  lagP50: number;
  lagP95: number;
}

/** A deployment under test: `servers` (one or more replicas) over one database, with its jobs and clients. */
interface Deployment {
  /** One measurement of every figure. */
  measure(): Promise<Figures>;
  close(): void;
}

async function deployment(servers: NodeServer[]): Promise<Deployment> {
  const token = (await createToken(servers[0]!.raw, { user: "bench", role: "admin" })).token;
  const clients: JobwatchClient[] = servers.map((s) => createClient({ address: s.address, token }));
  const jobs: string[] = [];
  for (let i = 0; i < CONCURRENCY; i++) {
    const job = await clients[0]!.worker.createJob({ operationType: "bench", username: "bench" });
    await clients[0]!.worker.startJob(job.jobId);
    jobs.push(job.jobId);
  }
  const via = (i: number) => clients[i % clients.length]!;
  let k = 0;
  return {
    close: () => {
      for (const c of clients) c.close();
    },
    async measure() {
      const getJob = await throughput((i) => via(i).getJob(jobs[i]!));
      const progress = await throughput((i) => via(i).worker.reportProgress(jobs[i]!, k++ % 100));
      const contended = await throughput((i) =>
        via(i)
          .worker.reportProgress(jobs[0]!, k++ % 100)
          .catch(() => undefined),
      );
      // Watch lag: written through the first replica, watched through the last (another one when there are two).
      const watcher = clients[clients.length - 1]!;
      const writer = clients[0]!;
      const lagJob = jobs[1]!;
      const acked = new Map<number, number>();
      const lags: number[] = [];
      const controller = new AbortController();
      const watching = (async () => {
        try {
          for await (const j of watcher.watchJob(lagJob, { signal: controller.signal })) {
            const at = acked.get(j.revision);
            if (at !== undefined) lags.push(performance.now() - at);
          }
        } catch {
          // aborted
        }
      })();
      await sleep(300);
      for (let i = 0; i < 40; i++) {
        const sent = performance.now();
        const job = await writer.worker.reportProgress(lagJob, i);
        acked.set(job.revision, sent);
        await sleep(37);
      }
      await sleep(POLL_MS * 3);
      controller.abort();
      await watching;
      return { getJob, progress, contended, lagP50: quantile(lags, 0.5), lagP95: quantile(lags, 0.95) };
    },
  };
}

/** The q-quantile of `values` (NaN when empty). */
function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

/** Each figure's median over the rounds. */
function medians(runs: Figures[]): Figures {
  const m = (key: keyof Figures) =>
    quantile(
      runs.map((r) => r[key]).filter((v) => !Number.isNaN(v)),
      0.5,
    );
  return {
    getJob: m("getJob"),
    progress: m("progress"),
    contended: m("contended"),
    lagP50: m("lagP50"),
    lagP95: m("lagP95"),
  };
}

/**
 * Median microseconds per read of one job row: plain, and causal (wsrep_sync_wait=1 on Galera). The
 * two alternate read by read, so a busy moment of the machine weighs on both alike.
 */
async function readCost(server: NodeServer, jobId: string): Promise<{ plain: number; causal: number }> {
  const kysely = server.raw.db;
  const reader = causalReader(kysely, "mysql");
  const query = kysely.selectFrom("jobs").selectAll().where("job_id", "=", jobId);
  const plain: number[] = [];
  const causal: number[] = [];
  for (let i = 0; i < 1100; i++) {
    let t = performance.now();
    await query.execute();
    if (i >= 100) plain.push((performance.now() - t) * 1000);
    t = performance.now();
    await reader.select(query);
    if (i >= 100) causal.push((performance.now() - t) * 1000);
  }
  return { plain: quantile(plain, 0.5), causal: quantile(causal, 0.5) };
}

/** New feed entries and rows read by a ChangeFeed polling every POLL_MS while `load` runs. */
async function feedRows(server: NodeServer, load: () => Promise<void>): Promise<{ entries: number; rows: number }> {
  let rows = 0;
  const count = (r: FeedEntry[]): FeedEntry[] => {
    rows += r.length;
    return r;
  };
  const store = {
    latestSeq: () => server.raw.latestSeq(),
    readFeed: (after: number, limit: number) => server.raw.readFeed(after, limit).then(count),
    readFeedRanges: (ranges: readonly SeqRange[], limit: number) =>
      server.raw.readFeedRanges(ranges, limit).then(count),
  };
  const feed = new ChangeFeed({ store, gapTimeoutMs: 5000 });
  await feed.start();
  let entries = 0;
  let done = false;
  const polling = (async () => {
    while (!done) {
      const batch = await feed.read();
      batch.commit();
      entries += batch.entries.length;
      await sleep(POLL_MS);
    }
  })();
  await load();
  await sleep(POLL_MS * 2);
  done = true;
  await polling;
  return { entries, rows };
}

async function main(): Promise<void> {
  if (GALERA_NODES.length < 3) throw new Error("run with `npm run bench:galera` (it starts the cluster)");
  const single = await mariadbDatabase();
  const cluster = await freshClusterDatabase();
  const stopping: NodeServer[] = [];
  try {
    const one = await startNodeServer(single.url, { pollMs: POLL_MS });
    const oneB = await startNodeServer(single.url, { pollMs: POLL_MS });
    stopping.push(one, oneB);
    const nodes = await Promise.all(cluster.urls.map((u) => startNodeServer(u, { pollMs: POLL_MS })));
    stopping.push(...nodes);

    const deployments: [string, Deployment][] = [
      ["one MariaDB, 1 replica", await deployment([one])],
      ["one MariaDB, 2 replicas", await deployment([one, oneB])],
      ["Galera, 1 replica (node 1)", await deployment([nodes[0]!])],
      ["Galera, 3 replicas (1 per node)", await deployment(nodes)],
    ];
    // Rounds alternate the deployments, so a busy moment of the machine does not land on one of them only.
    const runs = deployments.map((): Figures[] => []);
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, [, d]] of deployments.entries()) runs[i]!.push(await d.measure());
    }
    for (const [, d] of deployments) d.close();
    const rows = deployments.map(([name], i): [string, Figures] => [name, medians(runs[i]!)]);

    const job = await one.raw.createJob({ operationType: "read-cost", username: "bench" });
    const gJob = await nodes[0]!.raw.createJob({ operationType: "read-cost", username: "bench" });
    const costOne = await readCost(one, job.jobId);
    const costGalera = await readCost(nodes[1]!, gJob.jobId);

    const token = (await createToken(nodes[0]!.raw, { user: "feed", role: "admin" })).token;
    const writers = nodes.map((n) => createClient({ address: n.address, token }));
    const feedJobs = await Promise.all(
      writers.map(async (c) => {
        const j = await c.worker.createJob({ operationType: "feed", username: "feed" });
        await c.worker.startJob(j.jobId);
        return j.jobId;
      }),
    );
    // Uneven rates, as in real use: node 1 writes most, so the other nodes' seqs leave lasting holes.
    const feed = await feedRows(nodes[1]!, async () => {
      const until = Date.now() + 8000;
      await Promise.all(
        writers.map(async (c, i) => {
          for (let p = 0; Date.now() < until; p++) {
            await c.worker.reportProgress(feedJobs[i]!, p % 100);
            await sleep(i === 0 ? 5 : 60);
          }
        }),
      );
    });
    for (const c of writers) c.close();

    const f = (n: number) => n.toFixed(0).padStart(7);
    console.log(
      `\njobwatch on Galera vs one MariaDB (${CONCURRENCY} concurrent calls, ${SECONDS} s per figure, ` +
        `median of ${ROUNDS} alternating rounds; load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores)\n`,
    );
    console.log(
      "deployment                       GetJobDetails/s  ReportProgress/s  ReportProgress one job/s  watch lag p50/p95 ms",
    );
    for (const [name, r] of rows) {
      console.log(
        `${name.padEnd(32)} ${f(r.getJob)}          ${f(r.progress)}           ${f(r.contended)}                  ` +
          `${Number.isNaN(r.lagP50) ? "- (same replica)" : `${r.lagP50.toFixed(0)} / ${r.lagP95.toFixed(0)}`}`,
      );
    }
    console.log(
      `\none job row read, median: MariaDB ${costOne.plain.toFixed(0)} us; Galera node 2 plain ${costGalera.plain.toFixed(0)} us, ` +
        `causal (wsrep_sync_wait=1) ${costGalera.causal.toFixed(0)} us`,
    );
    console.log(
      `change feed on node 2 over 8 s of writes through 3 nodes: ${feed.entries} new entries, ${feed.rows} rows read ` +
        `(${(feed.rows / Math.max(1, feed.entries)).toFixed(2)} rows per entry)`,
    );
  } finally {
    await Promise.all(stopping.map((s) => s.stop()));
    await single.drop();
    await cluster.drop();
  }
}

await main();

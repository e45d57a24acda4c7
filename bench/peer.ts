// jobwatch beside BullMQ (issue 21 item 5), called by bench/run.ts (`BENCH_ONLY=peer`) with its SQLite
// jobwatch server: the same operations, the same load in flight from the load core, alternated run by run.
// jobwatch's side is its server process; BullMQ's is the Redis server (redis-server, not pinned: it is the
// machine's) plus, for the fan-out, the QueueEvents processes that read the event stream. Each run's keys
// carry a prefix of their own and are deleted at the end. Without a reachable Redis the rows are skipped.
import { setTimeout as sleep } from "node:timers/promises";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import type { JobwatchClient } from "../src/client/index.js";
import { GetJobDetailsRequest } from "../src/gen/jobwatch/v1/job_service.js";
import { ReportProgressRequest } from "../src/gen/jobwatch/v1/job_worker_service.js";
import type { BullMqLoadSpec } from "./bullmq-load.js";
import type { LoadResult } from "./h2-client.js";
import type { Child } from "./lib.js";
import { cpuMs, grpcFrame, h2Load, median, nodeTs, PINNING, pinned, run, startChild } from "./lib.js";

/** The jobwatch server run.ts started, and what the loads need of it. */
export interface PeerTarget {
  address: string;
  pid: number;
  userToken: string;
  workerToken: string;
  client: JobwatchClient;
  /** A job of bench-user's that GetJobDetails reads. */
  getJobId: string;
  /** 100 running jobs, one per in-flight slot of ReportProgress. */
  distinctJobIds: string[];
}

/** How much to run. */
export interface PeerOptions {
  rounds: number;
  durationS: number;
  /** Listener counts of the fan-out rows (the watchers of one job). */
  listeners: number[];
  changes: number;
  intervalMs: number;
}

const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const IN_FLIGHT = 100;
const WARMUP_MS = 1000;

/** One row: both sides' figures, jobwatch's over BullMQ's, and whether jobwatch is ahead. */
interface PeerRow {
  figure: string;
  jobwatch: string;
  bullmq: string;
  ratio: string;
  ahead: string;
}

/** What one closed-loop run measured: calls/s, and CPU per call (us) of the server side and of the client. */
interface Rate {
  perSecond: number;
  cpuUs: number;
  clientUs: number;
}

/** What one fan-out run measured. */
interface Delivery {
  /** CPU per delivered change: the server side's, and the listener processes' (us). */
  serverUs: number;
  listenersUs: number;
  delivered: number;
  /** Changes never delivered: skipped (a later one came first: jobwatch coalesces progress for a slow reader)... */
  lost: number;
  /** ...of which skipped; the rest had not arrived 15 s after the last change. */
  skipped: number;
  /** The worst of the listener processes' p99 delay (ms). */
  p99Ms: number;
}

/** The CPU (ms) of some processes together. */
const cpuOf = (pids: number[]): number => pids.reduce((sum, pid) => sum + cpuMs(pid), 0);

/** Runs `load` and divides `pid`'s CPU over it by the calls it made (warm-up included, as its CPU is). */
async function measured(pid: number, load: () => Promise<LoadResult>): Promise<Rate> {
  const before = cpuMs(pid);
  const result = await load();
  const failed = Object.values(result.failed).reduce((a, b) => a + b, 0);
  if (failed > 0) throw new Error(`${failed} calls failed: ${JSON.stringify(result.failed)}`);
  const per = (ms: number): number => (ms * 1000) / result.okTotal;
  return { perSecond: result.ok / result.seconds, cpuUs: per(cpuMs(pid) - before), clientUs: per(result.cpuMs) };
}

/**
 * `count` listeners of one job, held by one child of `script` per spec (bench/watchers.ts's IPC), see
 * `changes` made by `change` on a schedule; CPU per delivered change of `serverPids` and of the children.
 */
async function fanOut(
  script: string,
  specs: object[],
  serverPids: number[],
  change: (i: number) => Promise<unknown>,
  options: PeerOptions,
  count: number,
): Promise<Delivery> {
  const children: Child<unknown>[] = [];
  try {
    for (const spec of specs) {
      const child = await startChild<unknown>(PINNING?.load, nodeTs(script).concat(JSON.stringify(spec)));
      children.push(child);
    }
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`${script}: listeners not ready after 180 s`)), 180_000);
            c.process.once("message", (m: { type: string; message?: string }) => {
              clearTimeout(timer);
              if (m.type === "ready") resolve();
              else reject(new Error(`${script}: ${m.message}`));
            });
          }),
      ),
    );
    await sleep(500);
    type Report = { received: number; missed: number; p99Ms: number };
    const ask = (c: Child<unknown>): Promise<Report> =>
      new Promise((resolve) => {
        c.process.once("message", (m) => resolve(m as Report));
        c.process.send({ type: "report" });
      });
    const listenerPids = children.map((c) => c.pid);
    const before = { server: cpuOf(serverPids), listeners: cpuOf(listenerPids) };
    const started = performance.now();
    for (let i = 1; i <= options.changes; i++) {
      await change(i);
      await sleep(Math.max(0, started + i * options.intervalMs - performance.now()));
    }
    const expected = count * options.changes;
    let reports = await Promise.all(children.map(ask));
    const seen = (): number => reports.reduce((a, r) => a + r.received + r.missed, 0);
    for (let waited = 0; seen() < expected && waited < 15_000; waited += 100) {
      await sleep(100);
      reports = await Promise.all(children.map(ask));
    }
    const delivered = reports.reduce((a, r) => a + r.received, 0);
    const per = (ms: number): number => (ms * 1000) / Math.max(1, delivered);
    return {
      serverUs: per(cpuOf(serverPids) - before.server),
      listenersUs: per(cpuOf(listenerPids) - before.listeners),
      delivered,
      lost: expected - delivered,
      skipped: reports.reduce((a, r) => a + r.missed, 0),
      p99Ms: Math.max(...reports.map((r) => r.p99Ms)),
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
  }
}

/** `count` split over as many processes as run.ts would need for them (one per 2,500, at most 4). */
function split(count: number): number[] {
  const processes = Math.min(4, Math.max(1, Math.ceil(count / 2500)));
  return Array.from({ length: processes }, (_, i) => Math.floor(count / processes) + (i < count % processes ? 1 : 0));
}

/** The Redis server's pid and a client of it, or why there is none. */
async function connectRedis(): Promise<{ redis: Redis; pid: number } | string> {
  const redis = new Redis(REDIS_URL, {
    lazyConnect: true,
    connectTimeout: 1000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  // The connection's own error (ECONNREFUSED, ...) says more than the rejected connect() ("Connection is closed").
  let cause = "";
  redis.on("error", (error: Error) => {
    cause ||= error.message;
  });
  try {
    await redis.connect();
    const pid = Number(/process_id:(\d+)/.exec(await redis.info("server"))?.[1]);
    try {
      cpuMs(pid);
    } catch {
      redis.disconnect();
      return `the Redis server at ${REDIS_URL} (pid ${pid}) is not a process of this machine: its CPU cannot be read`;
    }
    return { redis, pid };
  } catch (error) {
    redis.disconnect();
    return `Redis at ${REDIS_URL} is not reachable (${cause || (error instanceof Error ? error.message : String(error))})`;
  }
}

/** Measures both sides, printing each row on stderr as it comes; returns the table's lines (for stdout). */
export async function peerBench(target: PeerTarget, options: PeerOptions): Promise<string[]> {
  const connected = await connectRedis();
  if (typeof connected === "string") {
    console.error(`jobwatch beside BullMQ: skipped, ${connected}`);
    return [`jobwatch beside BullMQ: skipped, ${connected}`];
  }
  const { redis, pid: redisPid } = connected;
  const url = new URL(REDIS_URL);
  const connection = { host: url.hostname, port: Number(url.port || 6379) };
  const prefix = `jobwatch-bench-${process.pid}-${Date.now()}`;
  const maxClients = Number(((await redis.config("GET", "maxclients")) as string[])[1]);
  const needed = Math.max(...options.listeners) + 200;
  const rows: PeerRow[] = [];
  const add = (row: PeerRow): void => {
    rows.push(row);
    console.error(
      `${row.figure}: jobwatch ${row.jobwatch}, BullMQ ${row.bullmq}, ${row.ratio} (jobwatch ahead: ${row.ahead})`,
    );
  };
  /** A row of the medians of `pick` over each side's runs; `higher`: a bigger figure is better. */
  const compare = <T>(
    figure: string,
    runs: [ours: T[], theirs: T[]],
    pick: (run: T) => number,
    unit: string,
    higher: boolean,
  ): void => {
    const [a, b] = runs.map((r) => median(r.map(pick))) as [number, number];
    const digits = Math.max(a, b) < 100 ? 1 : 0;
    add({
      figure,
      jobwatch: `${a.toFixed(digits)} ${unit}`,
      bullmq: `${b.toFixed(digits)} ${unit}`,
      ratio: `${(a / b).toFixed(2)}x`,
      ahead: (higher ? a > b : a < b) ? "yes" : "NO",
    });
  };
  const queue = new Queue("jobs", { connection, prefix });
  try {
    // 10,000 QueueEvents are 10,000 connections: above Redis's default cap, raised for the run only.
    if (maxClients < needed) await redis.config("SET", "maxclients", String(needed));
    const jobs = await queue.addBulk(Array.from({ length: 1 + IN_FLIGHT }, (_, i) => ({ name: "bench", data: { i } })));
    const readId = jobs[0]!.id!;
    const progressIds = jobs.slice(1).map((j) => j.id!);
    const bullmqLoad = (mode: BullMqLoadSpec["mode"], jobIds: string[]): Promise<LoadResult> => {
      const spec: BullMqLoadSpec = {
        mode,
        redis: connection,
        prefix,
        queue: "jobs",
        jobIds,
        inFlight: IN_FLIGHT,
        warmupMs: WARMUP_MS,
        durationMs: options.durationS * 1000,
      };
      const [command, args] = pinned(PINNING?.load, process.execPath, [
        ...nodeTs("bench/bullmq-load.ts"),
        JSON.stringify(spec),
      ]);
      return run(command, args).then((out) => JSON.parse(out) as LoadResult);
    };
    const jobwatchLoad = (path: string, token: string, bodies: Buffer[]): Promise<LoadResult> =>
      h2Load({
        address: target.address,
        path,
        headers: { authorization: `Bearer ${token}` },
        bodies: bodies.map((b) => b.toString("base64")),
        connections: 10,
        streams: IN_FLIGHT / 10,
        warmupMs: WARMUP_MS,
        durationMs: options.durationS * 1000,
      });
    const closedLoop = async (
      what: string,
      ours: () => Promise<LoadResult>,
      theirs: () => Promise<LoadResult>,
    ): Promise<void> => {
      const a: Rate[] = [];
      const b: Rate[] = [];
      for (let round = 0; round < options.rounds; round++) {
        a.push(await measured(target.pid, ours));
        b.push(await measured(redisPid, theirs));
      }
      compare(`${what}: calls/s`, [a, b], (r) => r.perSecond, "/s", true);
      compare(`${what}: server side's CPU per call`, [a, b], (r) => r.cpuUs, "us", false);
      compare(`${what}: server side's and client's CPU per call`, [a, b], (r) => r.cpuUs + r.clientUs, "us", false);
    };

    const getBody = grpcFrame(GetJobDetailsRequest.encode({ jobId: target.getJobId }).finish());
    await closedLoop(
      `one job's state and progress (GetJobDetails vs Job.fromId + getState), ${IN_FLIGHT} in flight`,
      () => jobwatchLoad("/jobwatch.v1.JobService/GetJobDetails", target.userToken, [getBody]),
      () => bullmqLoad("read", [readId]),
    );
    const reportBodies = target.distinctJobIds.map((jobId) =>
      grpcFrame(ReportProgressRequest.encode({ jobId, progress: 50 }).finish()),
    );
    await closedLoop(
      `a worker reporting progress (ReportProgress vs job.updateProgress), ${IN_FLIGHT} distinct jobs, ${IN_FLIGHT} in flight`,
      () => jobwatchLoad("/jobwatch.v1.JobWorkerService/ReportProgress", target.workerToken, reportBodies),
      () => bullmqLoad("progress", progressIds),
    );

    for (const count of options.listeners) {
      const a: Delivery[] = [];
      const b: Delivery[] = [];
      for (let round = 0; round < options.rounds; round++) {
        const job = await target.client.worker.createJob({ operationType: "bench_peer", username: "bench-user" });
        await target.client.worker.startJob(job.jobId);
        const parts = split(count);
        const watcherSpecs = parts.map((n) => ({
          address: target.address,
          token: target.userToken,
          jobId: job.jobId,
          count: n,
          connections: Math.ceil(20 / parts.length),
        }));
        a.push(
          await fanOut(
            "bench/watchers.ts",
            watcherSpecs,
            [target.pid],
            (i) => target.client.worker.reportProgress(job.jobId, i),
            options,
            count,
          ),
        );
        const name = `fan-${count}-${round}`;
        const fanQueue = new Queue(name, { connection, prefix });
        const fanJob = await fanQueue.add("bench", {});
        const listenerSpecs = parts.map((n) => ({
          redis: connection,
          prefix,
          queue: name,
          jobId: fanJob.id,
          count: n,
        }));
        try {
          b.push(
            await fanOut(
              "bench/bullmq-listeners.ts",
              listenerSpecs,
              [redisPid],
              (i) => fanJob.updateProgress(i),
              options,
              count,
            ),
          );
        } finally {
          await fanQueue.close();
        }
      }
      const what = `progress to ${count} listeners of one job (WatchJob vs QueueEvents), ${options.changes} changes`;
      compare(`${what}: server side's CPU per delivery`, [a, b], (d) => d.serverUs, "us", false);
      const all = (d: Delivery): number => d.serverUs + d.listenersUs;
      compare(`${what}: server side's and listeners' CPU per delivery`, [a, b], all, "us", false);
      compare(`${what}: p99 delay`, [a, b], (d) => d.p99Ms, "ms", false);
      const worst = (d: Delivery[]): Delivery => d.reduce((w, x) => (x.lost > w.lost ? x : w));
      const [ours, theirs] = [worst(a), worst(b)];
      add({
        figure: `${what}: delivered / lost (skipped, not arrived in 15 s), worst run`,
        jobwatch: `${ours.delivered} / ${ours.lost} (${ours.skipped}, ${ours.lost - ours.skipped})`,
        bullmq: `${theirs.delivered} / ${theirs.lost} (${theirs.skipped}, ${theirs.lost - theirs.skipped})`,
        ratio: "-",
        ahead: ours.lost < theirs.lost ? "yes" : ours.lost === theirs.lost ? `even (both ${ours.lost} lost)` : "NO",
      });
    }
  } finally {
    await queue.close();
    if (maxClients < needed) await redis.config("SET", "maxclients", String(maxClients));
    // Nothing of the run is left in Redis.
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      if (keys.length > 0) await redis.unlink(...keys);
      cursor = next;
    } while (cursor !== "0");
    redis.disconnect();
  }
  return [
    "| jobwatch beside BullMQ | jobwatch | BullMQ | jobwatch / BullMQ | jobwatch ahead |",
    "|---|---|---|---|---|",
    ...rows.map((r) => `| ${[r.figure, r.jobwatch, r.bullmq, r.ratio, r.ahead].join(" | ")} |`),
    "Server side: jobwatch's server process; BullMQ's: redis-server (BullMQ has no server: its Lua scripts run in " +
      "Redis). Listeners: the bench/watchers.ts processes (node:http2 streams) vs the bench/bullmq-listeners.ts " +
      "processes (one QueueEvents, so one Redis connection, per listener), the same number of processes on each side. Client: the closed " +
      "loop's load process (bench/h2-client.ts vs bench/bullmq-load.ts), from its first call to its last.",
  ];
}

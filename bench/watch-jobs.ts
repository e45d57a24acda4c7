// `npm run bench` part: 1,000 WatchJobs streams with different filters next to 1,000 WatchJob streams, on one
// server over SQLite. Prints change-feed queries per second (one poll per interval, whatever the number of
// streams) and process CPU per delivered change, with WatchJob as the baseline of the same run; then how
// long a change committed through the server takes to reach its own streams at the default 200 ms poll
// interval (WatchJobs next to WatchJob, from the change's updated_at to its arrival at the client).
import * as grpc from "@grpc/grpc-js";
import { JobStatus } from "../src/gen/jobwatch/v1/job.js";
import { WatchJobRequest, WatchJobsEventType, WatchJobsRequest } from "../src/gen/jobwatch/v1/job_service.js";
import type { SqlJobStore } from "../src/store/sql-job-store.js";
import { startTestServer } from "../test/helpers/server.js";

const STREAMS = Number(process.env.BENCH_WATCH_STREAMS ?? 1000);
/** Streams and changes of the delay on the writer's own replica. */
const LOCAL_STREAMS = 20;
const LOCAL_CHANGES = 200;
const USERS = 50;
const ROUNDS = 3;
const CHANGES_PER_ROUND = 40;
const POLL_MS = 100;

interface Figures {
  feedQueriesPerSecond: number;
  cpuUsPerDelivery: number;
  deliveries: number;
}

/** Counts readFeed calls of the store the server uses. */
function counting(store: SqlJobStore): { store: SqlJobStore; count(): number } {
  let n = 0;
  const wrapped = new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop === "readFeed" && typeof value === "function") {
        return (...args: unknown[]) => {
          n++;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store: wrapped, count: () => n };
}

async function measure(kind: "WatchJob" | "WatchJobs"): Promise<Figures> {
  let counter: { count(): number } | undefined;
  const s = await startTestServer({
    dialect: "sqlite",
    pollMs: POLL_MS,
    // 1,000 streams of one token: above the default per-user cap of 100.
    maxWatchesPerUser: 100_000,
    maxWatches: 100_000,
    wrapStore: (store) => {
      const c = counting(store);
      counter = c;
      return c.store;
    },
  });
  const worker = s.as(s.tokens.worker).worker;
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${s.tokens.admin}`);
  // The jobs that change: one per user, RUNNING.
  const jobs: string[] = [];
  for (let u = 0; u < USERS; u++) {
    const { job } = await worker.createJob({ operationType: `op_${u % 5}`, username: `user${u}` });
    await worker.startJob({ jobId: job!.jobId });
    jobs.push(job!.jobId);
  }
  let deliveries = 0;
  let opened = 0;
  let refused: grpc.ServiceError | undefined;
  const streams: grpc.ClientReadableStream<unknown>[] = [];
  for (let i = 0; i < STREAMS; i++) {
    const stream =
      kind === "WatchJob"
        ? s.jobClient.watchJob(WatchJobRequest.fromPartial({ jobId: jobs[i % USERS] }), md)
        : s.jobClient.watchJobs(
            WatchJobsRequest.fromPartial({
              username: `user${i % USERS}`,
              ...(i % 2 === 0 ? { statuses: [JobStatus.JOB_STATUS_RUNNING] } : {}),
              ...(i % 3 === 0 ? { operationType: `op_${i % 5}` } : {}),
            }),
            md,
          );
    stream.once("data", () => opened++);
    stream.on("data", () => deliveries++);
    stream.on("error", (error: grpc.ServiceError) => {
      // A stream refused before its first message would leave the wait below waiting forever.
      if (opened < STREAMS && error.code !== grpc.status.CANCELLED) refused ??= error;
    });
    streams.push(stream);
  }
  // Let every stream open (its snapshot or first job sent) before measuring.
  while (opened < STREAMS) {
    if (refused) throw new Error(`a ${kind} stream was refused: ${refused.message}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 500));
  const startDeliveries = deliveries;
  const startQueries = counter?.count() ?? 0;
  const startCpu = process.cpuUsage();
  const started = performance.now();
  for (let round = 0; round < ROUNDS; round++) {
    for (let c = 1; c <= CHANGES_PER_ROUND; c++) {
      await Promise.all(jobs.map((jobId) => worker.reportProgress({ jobId, progress: Math.min(99, round * 30 + c) })));
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  await new Promise((r) => setTimeout(r, 3 * POLL_MS + 500));
  const cpu = process.cpuUsage(startCpu);
  const seconds = (performance.now() - started) / 1000;
  const delivered = deliveries - startDeliveries;
  const queries = (counter?.count() ?? 0) - startQueries;
  for (const stream of streams) stream.cancel();
  await s.stop();
  return {
    feedQueriesPerSecond: queries / seconds,
    cpuUsPerDelivery: (cpu.user + cpu.system) / Math.max(1, delivered),
    deliveries: delivered,
  };
}

/** Delays from a change's updated_at to its arrival, for streams on the server the change was written through. */
async function localDelays(kind: "WatchJob" | "WatchJobs"): Promise<{ p50: number; p99: number; n: number }> {
  // The default poll interval: without the poll a commit asks for, WatchJobs would wait up to 200 ms.
  const s = await startTestServer({ dialect: "sqlite", pollMs: 200 });
  const worker = s.as(s.tokens.worker).worker;
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${s.tokens.admin}`);
  const { job } = await worker.createJob({ operationType: "local", username: "admin" });
  const jobId = job!.jobId;
  await worker.startJob({ jobId });
  const delays: number[] = [];
  const streams: grpc.ClientReadableStream<unknown>[] = [];
  let opened = 0;
  for (let i = 0; i < LOCAL_STREAMS; i++) {
    const stream =
      kind === "WatchJob"
        ? s.jobClient.watchJob(WatchJobRequest.fromPartial({ jobId }), md)
        : s.jobClient.watchJobs(WatchJobsRequest.fromPartial({ operationType: "local" }), md);
    let first = true;
    stream.on("data", (m: { job?: { updatedAt?: Date }; jobs?: { updatedAt?: Date }[]; type?: number }) => {
      const changed =
        kind === "WatchJob"
          ? m.job
          : m.type === WatchJobsEventType.WATCH_JOBS_EVENT_TYPE_CHANGED
            ? m.jobs?.[0]
            : undefined;
      if (first) {
        first = false;
        opened++;
        return;
      }
      if (changed?.updatedAt) delays.push(Date.now() - changed.updatedAt.getTime());
    });
    stream.on("error", () => undefined);
    streams.push(stream);
  }
  while (opened < LOCAL_STREAMS) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 300));
  for (let c = 1; c <= LOCAL_CHANGES; c++) {
    await worker.reportProgress({ jobId, progress: (c % 99) + 1 });
    // Spaced at an interval that is no multiple of the poll's, so changes fall all over the poll's cycle.
    await new Promise((r) => setTimeout(r, 23));
  }
  await new Promise((r) => setTimeout(r, 500));
  for (const stream of streams) stream.cancel();
  await s.stop();
  delays.sort((a, b) => a - b);
  const at = (p: number): number => delays[Math.max(0, Math.ceil(p * delays.length) - 1)] ?? Number.NaN;
  return { p50: at(0.5), p99: at(0.99), n: delays.length };
}

const single = await measure("WatchJob");
const multi = await measure("WatchJobs");
const row = (name: string, f: Figures): string =>
  `| ${name} | ${f.feedQueriesPerSecond.toFixed(1)} | ${f.cpuUsPerDelivery.toFixed(1)} us | ${f.deliveries} |`;
console.log(`\nWatchJobs vs WatchJob: ${STREAMS} streams each, ${USERS} running jobs, progress reports for ~seconds`);
console.log("| streams | feed queries/s | CPU per delivered change (server and clients) | deliveries |");
console.log("|---|---|---|---|");
console.log(row(`${STREAMS} x WatchJob (baseline)`, single));
console.log(row(`${STREAMS} x WatchJobs, different filters`, multi));
console.log(
  `WatchJobs/WatchJob CPU per delivery: ${(multi.cpuUsPerDelivery / single.cpuUsPerDelivery).toFixed(2)}x; ` +
    `feed queries/s ${multi.feedQueriesPerSecond.toFixed(1)} vs ${single.feedQueriesPerSecond.toFixed(1)} ` +
    `(one poll per ${POLL_MS} ms = ${(1000 / POLL_MS).toFixed(1)}/s whatever the number of streams, plus, for WatchJobs, ` +
    "the polls commits through this server ask for: at most one per 5 ms)",
);

const local = { single: await localDelays("WatchJob"), multi: await localDelays("WatchJobs") };
console.log(
  `\nA change reaching streams on the server it was written through (${LOCAL_STREAMS} streams, ${LOCAL_CHANGES} ` +
    "changes 23 ms apart, poll interval 200 ms; goal: WatchJobs p99 under 20 ms)",
);
console.log("| streams | p50 | p99 | deliveries |");
console.log("|---|---|---|---|");
for (const [name, f] of [
  ["WatchJob (baseline)", local.single],
  ["WatchJobs", local.multi],
] as const) {
  console.log(`| ${name} | ${f.p50} ms | ${f.p99} ms | ${f.n} |`);
}

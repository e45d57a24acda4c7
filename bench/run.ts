// Benchmarks of the two hot paths, GetJobDetails and the WatchJob fan-out, each printed as a ratio against
// a baseline measured in this same run on this same server (absolute numbers vary by machine; ratios less).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { createClient } from "../src/client/index.js";
import type { JobwatchClient } from "../src/client/index.js";
import { loadConfig } from "../src/config.js";
import { startService } from "../src/main.js";

const CALLS = Number(process.env.BENCH_CALLS ?? 4000);
const CONCURRENCY = 16;
const WATCHERS = Number(process.env.BENCH_WATCHERS ?? 200);
const REPORTS = 100;

/** Runs `call` CALLS times, CONCURRENCY at once; returns calls per second and latency percentiles. */
async function load(call: () => Promise<unknown>): Promise<{ perSecond: number; p50: number; p99: number }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < CALLS) {
        const t = performance.now();
        await call();
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
  return { perSecond: CALLS / seconds, p50: at(0.5), p99: at(0.99) };
}

/** A unary call to grpc.health.v1.Health/Check: transport only, no auth, no database. */
function healthCheck(channel: grpc.Client): Promise<void> {
  return new Promise((resolve, reject) => {
    channel.makeUnaryRequest(
      "/grpc.health.v1.Health/Check",
      () => Buffer.alloc(0),
      (b: Buffer) => b,
      {},
      (err) => (err ? reject(err) : resolve()),
    );
  });
}

/** Opens `watchers` watches of one job, drives it through REPORTS progress reports, and times the delivery. */
async function fanOut(client: JobwatchClient, watchers: number): Promise<{ ms: number; heapPerWatcher: number }> {
  const job = await client.worker.createJob({ operationType: "bench_fan_out", username: "admin" });
  const ready: Promise<void>[] = [];
  const done: Promise<void>[] = [];
  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  for (let i = 0; i < watchers; i++) {
    let markReady!: () => void;
    ready.push(new Promise((r) => (markReady = r)));
    done.push(
      (async () => {
        for await (const seen of client.watchJob(job.jobId)) {
          if (seen.revision === job.revision) markReady();
        }
      })(),
    );
  }
  await Promise.all(ready);
  global.gc?.();
  const heapPerWatcher = (process.memoryUsage().heapUsed - heapBefore) / watchers;
  const started = performance.now();
  await client.worker.startJob(job.jobId);
  for (let p = 1; p <= REPORTS; p++) await client.worker.reportProgress(job.jobId, p);
  await client.worker.completeJob(job.jobId, { bench: true });
  await Promise.all(done);
  return { ms: performance.now() - started, heapPerWatcher };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "jobwatch-bench-"));
  const config = loadConfig({
    JOBWATCH_DATABASE_URL: `sqlite:${join(dir, "bench.db")}`,
    JOBWATCH_LISTEN: "127.0.0.1:0",
    JOBWATCH_LOG_LEVEL: "silent",
  });
  let token = "";
  const service = await startService(config, pino({ level: "silent" }), (text) => {
    token = /jw_[A-Za-z0-9_-]+/.exec(text)?.[0] ?? token;
  });
  const client = createClient({ address: service.address, token });
  const channel = new grpc.Client(service.address, grpc.credentials.createInsecure());
  try {
    const job = await client.worker.createJob({ operationType: "bench_get", username: "admin" });
    // Warm up both paths (JIT, connections, the token cache).
    for (let i = 0; i < 200; i++) await Promise.all([healthCheck(channel), client.getJob(job.jobId)]);

    const health = await load(() => healthCheck(channel));
    const get = await load(() => client.getJob(job.jobId));
    console.log(`GetJobDetails hot path (${CALLS} calls, ${CONCURRENCY} in flight, SQLite):`);
    console.log(
      `  baseline health Check: ${health.perSecond.toFixed(0)} calls/s, p50 ${health.p50.toFixed(2)} ms, p99 ${health.p99.toFixed(2)} ms`,
    );
    console.log(
      `  GetJobDetails:         ${get.perSecond.toFixed(0)} calls/s, p50 ${get.p50.toFixed(2)} ms, p99 ${get.p99.toFixed(2)} ms`,
    );
    console.log(`  ratio GetJobDetails / baseline throughput: ${(get.perSecond / health.perSecond).toFixed(2)}x`);

    const one = await fanOut(client, 1);
    const many = await fanOut(client, WATCHERS);
    console.log(`WatchJob fan-out (${REPORTS + 2} changes, watchers and server in one process):`);
    console.log(`  baseline 1 watcher:  ${one.ms.toFixed(0)} ms until the last watcher saw COMPLETED`);
    console.log(
      `  ${WATCHERS} watchers:       ${many.ms.toFixed(0)} ms, about ${(many.heapPerWatcher / 1024).toFixed(1)} KiB heap per open watch (client and server side)`,
    );
    console.log(
      `  ratio ${WATCHERS} watchers / 1 watcher time: ${(many.ms / one.ms).toFixed(2)}x for ${WATCHERS}x the deliveries`,
    );
  } finally {
    channel.close();
    client.close();
    await service.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();

// `npm run bench:resume`: the resume storm of issue 9 defect 1. A job with 20,000 revisions whose
// progress details are ~1 KB; 40 watchers resume from revision 2 at once, against the real service in a
// child process on SQLite. Prints how long health Check took before and during the storm (and the ratio),
// and the server's RSS growth. Goals: health answers within 100 ms, RSS grows by under 50 MB.
// BENCH_REVISIONS and BENCH_WATCHERS override the sizes.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { JobServiceClient, WatchJobRequest } from "../src/gen/jobwatch/v1/job_service.js";
import { createStore } from "../src/store/open.js";
import { nodeTs, startChild } from "./lib.js";

const REVISIONS = Number(process.env.BENCH_REVISIONS ?? 20_000);
const WATCHERS = Number(process.env.BENCH_WATCHERS ?? 40);

const work = mkdtempSync(join(tmpdir(), "jobwatch-resume-"));
const url = `sqlite:${join(work, "jobwatch.db")}`;

/** Resident set size of a process, in MB. */
function rssMb(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  return kb / 1024;
}

try {
  // The job, written straight into the database before the server starts.
  const store = createStore(url);
  await store.migrate();
  const job = await store.createJob({ operationType: "bench_resume", username: "bench-user" });
  await store.startJob(job.jobId);
  const detail = "d".repeat(1000);
  for (let i = 0; i < REVISIONS - 2; i++) await store.reportProgress(job.jobId, i % 100, "indexing", `${i} ${detail}`);
  await store.close();

  const child = await startChild<{ address: string; user: string }>(undefined, [
    ...nodeTs("bench/jobwatch-server.ts"),
    url,
  ]);
  const { address, user } = child.info;
  const Health = grpc.makeGenericClientConstructor(healthService, "grpc.health.v1.Health") as unknown as new (
    address: string,
    credentials: grpc.ChannelCredentials,
  ) => grpc.Client & { check(r: { service: string }, cb: (e: grpc.ServiceError | null) => void): void };
  const health = new Health(address, grpc.credentials.createInsecure());
  const check = (): Promise<number> => {
    const t0 = performance.now();
    return new Promise((resolve, reject) =>
      health.check({ service: "" }, (e) => (e ? reject(e) : resolve(performance.now() - t0))),
    );
  };
  // Warm up (connection, first calls), then measure.
  for (let i = 0; i < 10; i++) await check();
  const idle: number[] = [];
  for (let i = 0; i < 50; i++) idle.push(await check());
  const rssBefore = rssMb(child.pid);

  // The storm: every watcher on its own connection, as separate clients would be.
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${user}`);
  const clients = Array.from(
    { length: WATCHERS },
    () => new JobServiceClient(address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }),
  );
  const during: number[] = [];
  let rssPeak = rssBefore;
  let resumed = 0;
  const t0 = performance.now();
  const allResumed = new Promise<void>((resolve, reject) => {
    for (const client of clients) {
      const stream = client.watchJob(WatchJobRequest.fromPartial({ jobId: job.jobId, afterRevision: 2 }), metadata);
      stream.once("data", () => {
        if (++resumed === WATCHERS) resolve();
      });
      stream.on("error", (e: grpc.ServiceError) => {
        if (e.code !== grpc.status.CANCELLED) reject(e);
      });
    }
  });
  let storming = true;
  const probing = (async () => {
    while (storming) {
      during.push(await check());
      rssPeak = Math.max(rssPeak, rssMb(child.pid));
    }
  })();
  await allResumed;
  const stormMs = performance.now() - t0;
  // A few more probes once every watcher is in.
  for (let i = 0; i < 10; i++) during.push(await check());
  storming = false;
  await probing;
  rssPeak = Math.max(rssPeak, rssMb(child.pid));

  const max = (xs: number[]) => Math.max(...xs);
  const idleMax = max(idle);
  const stormMax = max(during);
  console.log(
    `resume storm: ${WATCHERS} watchers from revision 2 of a job at revision ${REVISIONS} (~1 KB details), SQLite`,
  );
  console.log(`  all watchers resumed in        ${stormMs.toFixed(0)} ms`);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(
    `  health Check, idle             ${median(idle).toFixed(1)} ms median, ${idleMax.toFixed(1)} ms max of ${idle.length}`,
  );
  console.log(
    `  health Check, during the storm ${median(during).toFixed(1)} ms median, ${stormMax.toFixed(1)} ms max of ${during.length} (goal: max < 100 ms)`,
  );
  console.log(`  ratio storm / idle (max)       ${(stormMax / idleMax).toFixed(1)}x`);
  console.log(
    `  server RSS                     ${rssBefore.toFixed(0)} -> ${rssPeak.toFixed(0)} MB peak, +${(rssPeak - rssBefore).toFixed(0)} MB (goal < 50 MB)`,
  );
  for (const c of clients) c.close();
  health.close();
  await child.stop();
} finally {
  rmSync(work, { recursive: true, force: true });
}

// What the completion estimate costs GetJobDetails: one server with estimates and one without, on the same
// SQLite database in this process, read in alternating rounds; prints the ratio of their call rates.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { OpaqueTokenAuthenticator } from "../src/auth/opaque-token-authenticator.js";
import { createToken } from "../src/auth/token-admin.js";
import { EstimateBasis } from "../src/gen/jobwatch/v1/job.js";
import { GetJobDetailsRequest, JobServiceClient } from "../src/gen/jobwatch/v1/job_service.js";
import { createServer } from "../src/server/server.js";
import { createStore } from "../src/store/open.js";
import { Watches } from "../src/watch/watches.js";

const CALLS = Number(process.env.BENCH_ESTIMATE_CALLS ?? 4000);
const ROUNDS = 7;
const CONCURRENCY = 16;
const log = pino({ level: "silent" });

const dir = mkdtempSync(join(tmpdir(), "jobwatch-bench-estimate-"));
const store = createStore(`sqlite:${join(dir, "bench.db")}`);
await store.migrate();
const { token } = await createToken(store, { user: "bench", role: "admin" });
// A history of 50 completed runs, and the job that is read: RUNNING at 20%, estimated from its rate and the history.
for (let i = 0; i < 50; i++) {
  const job = await store.createJob({ operationType: "index_repo", username: "bench" });
  await store.startJob(job.jobId);
  await store.completeJob(job.jobId, null);
}
const job = await store.createJob({ operationType: "index_repo", username: "bench" });
await store.startJob(job.jobId);
await store.reportProgress(job.jobId, 20);

const authenticator = new OpaqueTokenAuthenticator({ store, log });
await authenticator.start();
const hub = new Watches({ store, pollMs: 1000, log });
await hub.start();

async function serve(estimates: boolean) {
  const server = createServer({ store, faults: undefined, hub, authenticator, log, estimates });
  const address = await server.listen("127.0.0.1:0");
  const client = new JobServiceClient(address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  const request = GetJobDetailsRequest.fromPartial({ jobId: job.jobId });
  const call = () =>
    new Promise<EstimateBasis>((resolve, reject) =>
      client.getJobDetails(request, md, (error, response) =>
        error ? reject(error) : resolve(response.job!.estimateBasis),
      ),
    );
  /** Calls per second over CALLS calls, CONCURRENCY at a time. */
  const rate = async (): Promise<number> => {
    const started = process.hrtime.bigint();
    let left = CALLS;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (left-- > 0) await call();
      }),
    );
    return CALLS / (Number(process.hrtime.bigint() - started) / 1e9);
  };
  return { server, client, call, rate };
}

const withEstimate = await serve(true);
const without = await serve(false);
if ((await withEstimate.call()) === EstimateBasis.ESTIMATE_BASIS_UNSPECIFIED) {
  throw new Error("the server with estimates sent none");
}
if ((await without.call()) !== EstimateBasis.ESTIMATE_BASIS_UNSPECIFIED) throw new Error("estimates not off");
await withEstimate.rate();
await without.rate();
const ratios: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  // Alternating order, so neither side always runs on a warmer (or busier) machine.
  const a = i % 2 === 0 ? await withEstimate.rate() : 0;
  const b = await without.rate();
  const c = i % 2 === 1 ? await withEstimate.rate() : a;
  ratios.push(b / c);
}
ratios.sort((x, y) => x - y);
const median = ratios[ratios.length >> 1]!;
console.log(
  `GetJobDetails with the completion estimate: ${((median - 1) * 100).toFixed(1)}% more time per call than without ` +
    `(median of ${ROUNDS} rounds of ${CALLS} calls; per-round: ${ratios.map((r) => r.toFixed(3)).join(" ")}; goal <= 3%)`,
);
for (const s of [withEstimate, without]) {
  s.client.close();
  await s.server.shutdown(1000);
}
await authenticator.stop();
await store.close();
rmSync(dir, { recursive: true, force: true });

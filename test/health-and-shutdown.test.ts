// Health (with and without the database), listening errors, and graceful shutdown of unary calls and watches.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ServiceError } from "@grpc/grpc-js";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import pino from "pino";
import { createServer } from "../src/server/server.js";
import type { JobStore } from "../src/store/store.js";
import { Watches } from "../src/watch/watches.js";
import { DIALECTS } from "./helpers/databases.js";
import { COMPLETED, RUNNING, serverSuite } from "./helpers/rpc.js";
import { startTestServer } from "./helpers/server.js";

const quiet = pino({ level: "silent" });

/** A client of grpc.health.v1.Health (grpc-health-check's proto-loader definition). */
const HealthClient = grpc.makeGenericClientConstructor(healthService, "grpc.health.v1.Health") as unknown as new (
  address: string,
  credentials: grpc.ChannelCredentials,
) => grpc.Client & {
  check(
    request: { service: string },
    callback: (error: ServiceError | null, response: { status: ServingStatus }) => void,
  ): void;
  watch(request: { service: string }): grpc.ClientReadableStream<{ status: ServingStatus }>;
};
type ServingStatus = "SERVING" | "NOT_SERVING" | "UNKNOWN" | "SERVICE_UNKNOWN";

function healthCheck(address: string, service: string): Promise<ServingStatus> {
  const client = new HealthClient(address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.check({ service }, (error: ServiceError | null, response: { status: ServingStatus }) => {
      client.close();
      if (error) reject(error);
      else resolve(response.status);
    });
  });
}

for (const dialect of DIALECTS) {
  describe(`jobwatch server (${dialect})`, () => {
    const suite = serverSuite(dialect);
    const { worker, jobsOf, create } = suite;

    describe("health and shutdown", () => {
      test("health is SERVING for the server and each service, without a token", async () => {
        for (const name of [
          "",
          "jobwatch.v1.JobService",
          "jobwatch.v1.JobWorkerService",
          "jobwatch.v1.JobWebhookService",
        ]) {
          assert.equal(await healthCheck(suite.server.address, name), "SERVING");
        }
      });

      test("health is NOT_SERVING while the database cannot be reached, and SERVING again after", async () => {
        let down = false;
        const flaky = (store: JobStore): JobStore =>
          new Proxy(store, {
            get(target, property) {
              if (property === "ping" && down) return async () => Promise.reject(new Error("connection refused"));
              const value = Reflect.get(target, property, target) as unknown;
              return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
            },
          });
        const r = await startTestServer({ sharing: suite.server, healthIntervalMs: 20, wrapStore: flaky });
        const client = new HealthClient(r.address, grpc.credentials.createInsecure());
        try {
          const seen: ServingStatus[] = [];
          const call = client.watch({ service: "jobwatch.v1.JobService" });
          const next = (want: ServingStatus): Promise<void> =>
            new Promise((resolve) => {
              const onData = (m: { status: ServingStatus }): void => {
                seen.push(m.status);
                if (m.status === want) {
                  call.off("data", onData);
                  resolve();
                }
              };
              call.on("data", onData);
            });
          await next("SERVING");
          down = true;
          await next("NOT_SERVING");
          assert.equal(await healthCheck(r.address, ""), "NOT_SERVING");
          down = false;
          await next("SERVING");
          call.cancel();
          call.on("error", () => undefined);
        } finally {
          client.close();
          await r.stop();
        }
      });

      test("listening on a port in use fails with one clear line", async () => {
        const second = createServer({
          store: suite.server.store,
          faults: undefined,
          hub: new Watches({ store: suite.server.store, pollMs: 1000, log: quiet }),
          authenticator: { authenticate: () => Promise.reject(new Error("never called")) },
          log: quiet,
        });
        try {
          await assert.rejects(second.listen(suite.server.address), {
            message: `cannot listen on ${suite.server.address}: address already in use`,
          });
        } finally {
          await second.shutdown(0);
        }
      });

      test("shutdown lets a unary call in flight finish", async () => {
        let entered!: () => void;
        const inside = new Promise<void>((r) => (entered = r));
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        const slowReads = (store: JobStore): JobStore =>
          new Proxy(store, {
            get(target, property) {
              const value = Reflect.get(target, property, target) as unknown;
              if (property === "getJob") {
                return async (jobId: string) => {
                  entered();
                  await gate;
                  return target.getJob(jobId);
                };
              }
              return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
            },
          });
        const r = await startTestServer({ sharing: suite.server, wrapStore: slowReads });
        const job = await create("alice");
        const call = r.as(r.tokens.alice).jobs.getJobDetails({ jobId: job.jobId });
        await inside;
        const stopping = r.stop();
        release();
        const { job: read } = await call;
        assert.equal(read?.jobId, job.jobId);
        await stopping;
      });

      test("shutdown reaches a watch whose client stopped reading: UNAVAILABLE once it reads, not a forced close", async () => {
        const r = await startTestServer({ sharing: suite.server });
        const viaR = r.as(r.tokens.worker).worker;
        const job = (await viaR.createJob({ operationType: "add_golden_repo", username: "alice" })).job!;
        await viaR.startJob({ jobId: job.jobId });
        const watch = r.watch(r.tokens.alice, { jobId: job.jobId });
        await watch.received(1);
        watch.stream.pause();
        // Big details fill the HTTP/2 window: the server's handler ends up waiting for the client to read.
        for (let i = 1; i <= 300; i++) {
          await viaR.reportProgress({
            jobId: job.jobId,
            progress: Math.floor(i / 3),
            detail: `${i}/300 `.padEnd(900, "."),
          });
        }
        assert.ok(r.hub.bufferedCount >= 1, "the newest change should wait in the hub for the stalled stream");
        const hubClosed = new Promise((resolve) => r.hub.closing.addEventListener("abort", resolve));
        const stopping = r.stop();
        await hubClosed;
        watch.stream.resume();
        const end = await watch.done;
        await stopping;
        // A forced close (the shutdown timeout) would have ended it CANCELLED, without the revision.
        assert.equal(grpc.status[end.code], "UNAVAILABLE");
        const last = watch.jobs.at(-1)!;
        assert.equal(end.details, `server is shutting down: reconnect and resume with after_revision=${last.revision}`);
        // Resuming there on another server continues from the newest state, then the end.
        const resumed = suite.server.watch(suite.server.tokens.alice, {
          jobId: job.jobId,
          afterRevision: last.revision,
        });
        await worker().completeJob({ jobId: job.jobId });
        assert.equal(grpc.status[(await resumed.done).code], "OK");
        assert.equal(resumed.jobs.at(-1)?.status, COMPLETED);
        assert.ok(resumed.jobs.every((j) => j.revision > last.revision));
      });

      test("shutdown ends an open watch with UNAVAILABLE naming the revision to resume after", async () => {
        const r = await startTestServer({ sharing: suite.server });
        const job = await create("alice");
        await worker().startJob({ jobId: job.jobId });
        const watch = r.watch(r.tokens.alice, { jobId: job.jobId });
        await watch.received(1);
        await r.stop();
        const end = await watch.done;
        assert.equal(grpc.status[end.code], "UNAVAILABLE");
        assert.match(end.details, /after_revision=2/);
        // The other server still serves.
        const { job: still } = await jobsOf(suite.server.tokens.alice).getJobDetails({ jobId: job.jobId });
        assert.equal(still?.status, RUNNING);
      });
    });
  });
}

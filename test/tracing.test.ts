// OpenTelemetry tracing as an operator sees it in a collector: a real `jobwatch serve` exporting over OTLP/HTTP
// to a receiver in this test, a job created by the CLI, driven by a worker (the client library) and watched
// by the CLI, all in one trace; rpc.* and store attributes, links to the job's creation, GetJobDetails
// naming the trace, no secret anywhere; and tracing off: no SDK loaded, no trace id.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { context, propagation, ROOT_CONTEXT, TraceFlags, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { createClient } from "../src/client/index.js";
import { cli, type Run, start } from "./helpers/cli.js";
import { DIALECTS, freshDatabase, type TestDatabase } from "./helpers/databases.js";
import { type OtlpReceiver, type ReceivedSpan, spanTree, startOtlpReceiver } from "./helpers/otlp-receiver.js";

// The worker below is an application using the client library with OpenTelemetry set up: these are what
// the Node SDK registers (the test process exports nothing itself).
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
propagation.setGlobalPropagator(new W3CTraceContextPropagator());

/** `jobwatch serve` on `database`, its address and admin token once it serves. */
async function serve(
  database: TestDatabase,
  env: Record<string, string>,
): Promise<{ run: Run; address: string; admin: string }> {
  const run = start(["serve", "--listen", "127.0.0.1:0", "--log-level", "info"], {
    env: { JOBWATCH_DATABASE_URL: database.url, ...env },
  });
  await run.waitFor(/jobwatch is serving/);
  await run.waitFor(/^\s+(jw_\S+)$/m);
  const address = /"address":"([^"]+)"/.exec(run.stdout)![1]!;
  const admin = /^\s+(jw_\S+)$/m.exec(run.stderr)![1]!;
  return { run, address, admin };
}

async function stop(run: Run): Promise<void> {
  if (run.child.exitCode !== null) return;
  run.child.kill("SIGTERM");
  assert.equal(await run.exited, 0, run.stderr);
}

const serverSpan = (spans: ReceivedSpan[], method: string): ReceivedSpan | undefined =>
  spans.find((s) => s.kind === 2 && s.attributes["rpc.method"] === method);

for (const dialect of DIALECTS) {
  describe(`tracing over OTLP (${dialect})`, () => {
    let receiver: OtlpReceiver;
    let database: TestDatabase;
    let server: { run: Run; address: string; admin: string };
    let alice: string;

    before(async () => {
      receiver = await startOtlpReceiver();
      database = await freshDatabase(dialect);
      server = await serve(database, {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_SERVICE_NAME: "jobwatch-under-test",
        OTEL_BSP_SCHEDULE_DELAY: "50",
      });
      const made = await cli(["token", "create", "--user", "alice", "--role", "normal_user"], {
        env: { JOBWATCH_DATABASE_URL: database.url },
      });
      assert.equal(made.code, 0, made.stderr);
      alice = made.stdout.trim();
    });

    after(async () => {
      await stop(server.run);
      await receiver.close();
      await database.drop();
    });

    test("a job created by the CLI, driven by a worker and watched is one trace; later rpcs link to its creation", async () => {
      // The pipeline that runs it all (a CI job, say) hands its trace context on as OpenTelemetry does
      // between processes: TRACEPARENT for the commands, the active context for the library.
      const pipeline = {
        traceId: randomBytes(16).toString("hex"),
        spanId: randomBytes(8).toString("hex"),
        traceFlags: TraceFlags.SAMPLED,
        isRemote: true,
      };
      const otel = {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: "50",
        TRACEPARENT: `00-${pipeline.traceId}-${pipeline.spanId}-01`,
        JOBWATCH_ADDRESS: server.address,
      };
      const created = await cli(
        ["job", "create", "--operation", "add_golden_repo", "--user", "alice", "--resource", "traced-repo"],
        { env: { ...otel, JOBWATCH_TOKEN: server.admin } },
      );
      assert.equal(created.code, 0, created.stderr);
      const jobId = created.stdout.trim();
      const watcher = start(["watch", jobId], { env: { ...otel, JOBWATCH_TOKEN: alice } });
      await watcher.waitFor(/pending/i);

      const worker = createClient({ address: server.address, token: server.admin });
      try {
        await context.with(trace.setSpanContext(ROOT_CONTEXT, pipeline), async () => {
          await worker.worker.startJob(jobId);
          await worker.worker.reportProgress(jobId, 40, { phase: "semantic", detail: "200/500 files" });
        });
        // A worker with no trace of its own: its rpc is a trace of its own, linked to the job's creation.
        await worker.worker.heartbeat(jobId);
        await context.with(trace.setSpanContext(ROOT_CONTEXT, pipeline), () =>
          worker.worker.completeJob(jobId, { files: 500, secret_looking: "hunter2" }),
        );
      } finally {
        worker.close();
      }
      assert.equal(await watcher.exited, 0, watcher.stderr);

      const got = await cli(["get", jobId, "--json"], { env: { ...otel, JOBWATCH_TOKEN: alice } });
      assert.equal(got.code, 0, got.stderr);

      const wanted = [
        "CreateJob",
        "StartJob",
        "ReportProgress",
        "Heartbeat",
        "CompleteJob",
        "WatchJob",
        "GetJobDetails",
      ];
      await receiver.waitFor(
        (spans) =>
          wanted.every((m) => serverSpan(spans, m) !== undefined) &&
          ["jobwatch job create", "jobwatch watch", "jobwatch get"].every((n) => spans.some((s) => s.name === n)),
      );
      const spans = receiver.spans;
      const inPipeline = spans.filter((s) => s.traceId === pipeline.traceId);
      console.log(`span tree of the pipeline's trace:\n${spanTree(inPipeline)}`);

      // One trace: the commands under the pipeline, the server's spans under the commands and the worker.
      const createCommand = spans.find((s) => s.name === "jobwatch job create")!;
      const createJob = serverSpan(spans, "CreateJob")!;
      assert.equal(createCommand.traceId, pipeline.traceId);
      assert.equal(createCommand.parentSpanId, pipeline.spanId);
      assert.equal(createJob.parentSpanId, createCommand.spanId);
      for (const method of ["CreateJob", "StartJob", "ReportProgress", "CompleteJob", "WatchJob", "GetJobDetails"]) {
        const s = serverSpan(spans, method)!;
        assert.equal(s.traceId, pipeline.traceId, `${method} is in the pipeline's trace`);
        assert.equal(
          s.name,
          `jobwatch.v1.${method === "WatchJob" || method === "GetJobDetails" ? "JobService" : "JobWorkerService"}/${method}`,
        );
        assert.equal(s.attributes["rpc.system"], "grpc");
        assert.equal(s.attributes["rpc.method"], method);
        assert.match(String(s.attributes["rpc.service"]), /^jobwatch\.v1\.Job(Worker)?Service$/);
        assert.equal(s.attributes["rpc.grpc.status_code"], 0);
        assert.equal(s.resource["service.name"], "jobwatch-under-test");
      }
      assert.equal(serverSpan(spans, "StartJob")!.parentSpanId, pipeline.spanId, "the library propagated the context");

      // The store's queries are children of the rpc that made them: dialect and operation, nothing else.
      const createStore = spans.find((s) => s.parentSpanId === createJob.spanId && s.kind === 3);
      assert.ok(createStore, `a store span under CreateJob:\n${spanTree(spans)}`);
      assert.deepEqual(createStore.attributes, { "db.system.name": dialect, "db.operation.name": "createJob" });
      const detailsSpan = serverSpan(spans, "GetJobDetails")!;
      assert.ok(
        spans.some((s) => s.parentSpanId === detailsSpan.spanId && s.attributes["db.operation.name"] === "getJob"),
      );

      // Every later rpc on the job links to the CreateJob span, the untraced worker's heartbeat included.
      for (const method of ["StartJob", "ReportProgress", "Heartbeat", "CompleteJob"]) {
        const s = serverSpan(spans, method)!;
        assert.deepEqual(
          s.links.map((l) => [l.traceId, l.spanId]),
          [[pipeline.traceId, createJob.spanId]],
          `${method} links to the job's creation`,
        );
        assert.equal(s.attributes["jobwatch.job.id"], jobId);
      }
      const heartbeat = serverSpan(spans, "Heartbeat")!;
      assert.notEqual(heartbeat.traceId, pipeline.traceId, "an untraced caller starts a trace of its own");
      assert.equal(heartbeat.parentSpanId, "");

      // GetJobDetails names the trace, so a user can open it.
      assert.equal((JSON.parse(got.stdout) as { traceId?: string }).traceId, pipeline.traceId);

      // No secret in any attribute: not the tokens, not an authorization header, not a request's values.
      const everything = JSON.stringify(spans.map((s) => [s.attributes, s.links, s.resource]));
      for (const secret of [server.admin, alice, "Bearer", "hunter2", "200/500 files", "traced-repo"]) {
        assert.ok(!everything.includes(secret), `no attribute holds ${secret.slice(0, 6)}...`);
      }
      assert.ok(!/authorization/i.test(everything));
    });

    test("a refused call has its span too: UNAUTHENTICATED, no parent, no token", async () => {
      const stranger = createClient({ address: server.address, token: "jw_000000000000_not-a-real-token" });
      try {
        await assert.rejects(stranger.getJob("3f0e2c1a-9b7d-4c2e-8f1a-2b3c4d5e6f70"), { code: 16 });
      } finally {
        stranger.close();
      }
      await receiver.waitFor((spans) => spans.some((s) => s.kind === 2 && s.attributes["rpc.grpc.status_code"] === 16));
      const refused = receiver.spans.find((s) => s.attributes["rpc.grpc.status_code"] === 16)!;
      assert.equal(refused.attributes["rpc.method"], "GetJobDetails");
      assert.ok(!JSON.stringify(refused).includes("not-a-real-token"));
      // Not the server's fault: the span's status stays unset.
      assert.equal(refused.statusCode, 0);
    });
  });
}

describe("tracing off (no OTEL_* endpoint)", () => {
  let database: TestDatabase;
  let dir: string;

  before(async () => {
    database = await freshDatabase("sqlite");
    dir = await mkdtemp(join(tmpdir(), "jobwatch-tracing-off-"));
  });

  after(async () => {
    await database.drop();
    await rm(dir, { recursive: true, force: true });
  });

  test("the server loads no OpenTelemetry SDK, and jobs carry no trace id", async () => {
    const loaded = join(dir, "imports.txt");
    const hook = new URL("./helpers/trace-imports.mjs", import.meta.url).href;
    const run = start(["serve", "--listen", "127.0.0.1:0", "--log-level", "info"], {
      env: { JOBWATCH_DATABASE_URL: database.url, JOBWATCH_TRACE_IMPORTS: loaded, OTEL_EXPORTER_OTLP_ENDPOINT: "" },
      nodeArgs: ["--import", hook],
    });
    try {
      await run.waitFor(/jobwatch is serving/);
      await run.waitFor(/^\s+(jw_\S+)$/m);
      const address = /"address":"([^"]+)"/.exec(run.stdout)![1]!;
      const admin = /^\s+(jw_\S+)$/m.exec(run.stderr)![1]!;
      const client = createClient({ address, token: admin });
      try {
        const job = await client.worker.createJob({ operationType: "untraced", username: "admin" });
        await client.worker.startJob(job.jobId);
        const read = await client.getJob(job.jobId);
        assert.equal(read.traceId, undefined);
      } finally {
        client.close();
      }
      const modules = await readFile(loaded, "utf8");
      assert.ok(modules.includes("@opentelemetry/api"), "the API is loaded (it is the hot path's only part)");
      assert.doesNotMatch(modules, /@opentelemetry\/(sdk-|exporter-|resources|context-async-hooks|core)/);
    } finally {
      await stop(run);
    }
  });
});

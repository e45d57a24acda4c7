// Prometheus metrics on JOBWATCH_METRICS_LISTEN: go-grpc-prometheus names, labels and code spellings,
// counted exactly (rejected calls too), jobwatch's own metrics and the process metrics.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { pino } from "pino";
import { Registry } from "prom-client";
import { createClient, JobNotFoundError, type JobwatchClient, UnauthenticatedError } from "../src/client/index.js";
import { loadConfig } from "../src/config.js";
import { type Service, startService } from "../src/main.js";
import { Metrics } from "../src/server/metrics.js";
import type { JobStore } from "../src/store/store.js";
import { dispatcherMetrics } from "../src/webhooks/metrics.js";
import { startReceiver } from "./helpers/webhook-receiver.js";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `a Prometheus text line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The one sample with this name whose labels include `labels`; fails when none or several match. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(found.length, 1, `one sample ${name}${JSON.stringify(labels)}, found ${found.length}`);
  return found[0]!.value;
}

const GET = { grpc_type: "unary", grpc_service: "jobwatch.v1.JobService", grpc_method: "GetJobDetails" };
const WATCH = { grpc_type: "server_stream", grpc_service: "jobwatch.v1.JobService", grpc_method: "WatchJob" };
const UNKNOWN_JOB = "3f0e2c1a-9b7d-4c2e-8f1a-2b3c4d5e6f70";

describe("metrics", () => {
  let dir: string;
  let service: Service;
  let admin: JobwatchClient;
  let scrape: () => Promise<Sample[]>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "jobwatch-metrics-"));
    let token = "";
    service = await startService(
      loadConfig({
        JOBWATCH_DATABASE_URL: `sqlite:${join(dir, "m.db")}`,
        JOBWATCH_LISTEN: "127.0.0.1:0",
        JOBWATCH_METRICS_LISTEN: "127.0.0.1:0",
        JOBWATCH_ACCESS_LOG: "off",
        // Retries soon enough for the webhook test.
        JOBWATCH_WEBHOOK_POLL: "50ms",
        JOBWATCH_WEBHOOK_MAX_BACKOFF: "200ms",
      }),
      pino({ level: "silent" }),
      (text) => {
        token = /jw_[A-Za-z0-9_-]+/.exec(text)?.[0] ?? token;
      },
    );
    admin = createClient({ address: service.address, token, retry: { maxAttempts: 1 } });
    scrape = async () => {
      const res = await fetch(`http://${service.metricsAddress}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
      return parse(await res.text());
    };
  });

  after(async () => {
    admin.close();
    await service.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("gRPC server metrics count each call exactly, with go-grpc-prometheus names, labels and codes", async () => {
    const before = await scrape();
    const notFound = (s: Sample[]): number => {
      const found = s.filter((x) => x.name === "grpc_server_handled_total" && x.labels.grpc_code === "NotFound");
      return found.reduce((a, x) => a + (x.labels.grpc_method === "GetJobDetails" ? x.value : 0), 0);
    };
    assert.equal(notFound(before), 0);
    for (let i = 0; i < 3; i++) await assert.rejects(admin.getJob(UNKNOWN_JOB), JobNotFoundError);
    const job = await admin.worker.createJob({ operationType: "metrics_test", username: "admin" });
    await admin.getJob(job.jobId);
    const anonymous = createClient({
      address: service.address,
      token: `jw_000000000000_${"x".repeat(43)}`,
      retry: { maxAttempts: 1 },
    });
    await assert.rejects(anonymous.getJob(job.jobId), UnauthenticatedError);
    anonymous.close();

    const after = await scrape();
    assert.equal(value(after, "grpc_server_handled_total", { ...GET, grpc_code: "NotFound" }), 3);
    assert.equal(value(after, "grpc_server_handled_total", { ...GET, grpc_code: "OK" }), 1);
    assert.equal(
      value(after, "grpc_server_handled_total", { ...GET, grpc_code: "Unauthenticated" }),
      1,
      "rejected by the interceptor",
    );
    assert.equal(value(after, "grpc_server_started_total", GET), 5);
    // The refused call never had its request read: the interceptor answered before the message was delivered.
    assert.equal(value(after, "grpc_server_msg_received_total", GET), 4);
    assert.equal(value(after, "grpc_server_msg_sent_total", GET), 1, "only the OK call sent a message");
    assert.equal(value(after, "grpc_server_handling_seconds_count", GET), 5);
    assert.equal(value(after, "grpc_server_handling_seconds_bucket", { ...GET, le: "+Inf" }), 5);
    assert.equal(
      value(after, "grpc_server_handled_total", {
        grpc_type: "unary",
        grpc_service: "jobwatch.v1.JobWorkerService",
        grpc_method: "CreateJob",
        grpc_code: "OK",
      }),
      1,
    );
  });

  test("watches: open count, changes delivered, delivery lag, coalescing; and the rest of jobwatch's metrics", async () => {
    const job = await admin.worker.createJob({ operationType: "metrics_watch", username: "admin" });
    const seen: number[] = [];
    const watching = (async () => {
      for await (const j of admin.watchJob(job.jobId)) seen.push(j.revision);
    })();
    while (seen.length === 0) await delay(20);
    const during = await scrape();
    assert.equal(value(during, "jobwatch_watches_open"), 1);
    assert.equal(value(during, "grpc_server_started_total", WATCH), 1);
    await admin.worker.startJob(job.jobId);
    await admin.worker.reportProgress(job.jobId, 50);
    await admin.worker.completeJob(job.jobId, {});
    await watching;
    // The stream's end is counted once the server has sent its status.
    let done = await scrape();
    for (let i = 0; i < 50 && value(done, "jobwatch_watches_open") !== 0; i++) {
      await delay(50);
      done = await scrape();
    }
    assert.equal(value(done, "jobwatch_watches_open"), 0);
    assert.equal(value(done, "grpc_server_handled_total", { ...WATCH, grpc_code: "OK" }), 1);
    assert.equal(value(done, "grpc_server_msg_sent_total", WATCH), seen.length);
    assert.equal(value(done, "jobwatch_watch_changes_delivered_total"), seen.length);
    assert.equal(
      value(done, "jobwatch_watch_delivery_lag_seconds_count"),
      seen.length - 1,
      "all but the first message",
    );
    assert.ok(value(done, "jobwatch_watch_progress_coalesced_total") >= 0);

    assert.ok(value(done, "jobwatch_change_feed_poll_seconds_count") > 0, "the feed is polled");
    assert.ok(value(done, "jobwatch_db_query_seconds_count", { operation: "getJob" }) > 0);
    assert.ok(value(done, "jobwatch_db_query_seconds_count", { operation: "createJob" }) >= 2);
    for (let i = 0; i < 60 && !done.some((s) => s.name === "jobwatch_db_up" && s.value === 1); i++) {
      await delay(100);
      done = await scrape();
    }
    assert.equal(value(done, "jobwatch_db_up"), 1, "the health ping reached the database");
    // Counted at most every 15 s (see the next test), so the figures may be from an earlier scrape.
    for (const status of ["pending", "running", "completed", "failed", "cancelled"]) {
      assert.ok(value(done, "jobwatch_jobs", { status }) >= 0, status);
    }
    for (const kind of ["stale", "cancel_grace", "retention"]) {
      assert.equal(value(done, "jobwatch_sweeper_jobs_total", { kind }), 0);
    }
    assert.ok(value(done, "jobwatch_auth_cache_hits_total", { kind: "token" }) > 0);
    assert.ok(value(done, "jobwatch_auth_cache_misses_total", { kind: "token" }) >= 1);
    assert.equal(value(done, "jobwatch_auth_cache_hits_total", { kind: "jwt" }), 0);
    assert.equal(value(done, "jobwatch_auth_jwks_loads_total"), 0);
    assert.ok(value(done, "jobwatch_auth_token_reloads_total") >= 1);
    for (const name of [
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
      "nodejs_eventloop_lag_seconds",
      "nodejs_heap_size_used_bytes",
    ]) {
      assert.ok(
        done.some((s) => s.name === name),
        name,
      );
    }
    assert.ok(
      done.some((s) => s.name.startsWith("nodejs_gc_duration_seconds")),
      "GC",
    );
  });

  test("jobs by status: read from the store at most every 15 s, however often /metrics is scraped", async () => {
    let reads = 0;
    const byStatus = { pending: 2, running: 1, completed: 7, failed: 0, cancelled: 1 };
    const store = {
      getStatistics: async () => {
        reads++;
        return { byStatus } as unknown as Awaited<ReturnType<JobStore["getStatistics"]>>;
      },
    };
    const metrics = new Metrics({}, () => store);
    const first = parse(await metrics.registry.metrics());
    assert.equal(value(first, "jobwatch_jobs", { status: "completed" }), 7);
    assert.equal(value(first, "jobwatch_jobs", { status: "pending" }), 2);
    byStatus.completed = 8;
    for (let i = 0; i < 5; i++) await metrics.registry.metrics();
    assert.equal(reads, 1, "one GROUP BY for six scrapes");
    metrics.registry.clear();
  });

  test("webhooks: attempts by outcome and their latency, deliveries ended, in flight, the outbox's backlog", async () => {
    const receiver = await startReceiver();
    try {
      receiver.mode = "down";
      const made = await admin.webhooks.create({ url: receiver.url, allUsers: true, operationTypes: ["metrics_hook"] });
      receiver.setSecret(made.secret);
      const job = await admin.worker.createJob({ operationType: "metrics_hook", username: "alice" });
      await admin.worker.startJob(job.jobId);
      await admin.worker.completeJob(job.jobId, {});
      // While the receiver answers 503 the delivery stays in the outbox (counted at most every 5 s).
      let seen = await scrape();
      for (let i = 0; i < 100 && value(seen, "jobwatch_webhook_outbox_pending") !== 1; i++) {
        await delay(100);
        seen = await scrape();
      }
      assert.equal(value(seen, "jobwatch_webhook_outbox_pending"), 1);
      assert.ok(value(seen, "jobwatch_webhook_outbox_oldest_pending_seconds") >= 0);
      assert.ok(value(seen, "jobwatch_webhook_attempts_total", { outcome: "http_5xx" }) >= 1);
      assert.equal(value(seen, "jobwatch_webhook_attempts_total", { outcome: "success" }), 0);
      receiver.mode = "ok";
      await receiver.waitFor((r) => r.unique().length === 1);
      for (let i = 0; i < 100 && value(seen, "jobwatch_webhook_deliveries_total", { result: "delivered" }) !== 1; i++) {
        await delay(50);
        seen = await scrape();
      }
      assert.equal(value(seen, "jobwatch_webhook_deliveries_total", { result: "delivered" }), 1);
      assert.equal(value(seen, "jobwatch_webhook_deliveries_total", { result: "given_up" }), 0);
      assert.equal(value(seen, "jobwatch_webhook_attempts_total", { outcome: "success" }), 1);
      const attempts = seen
        .filter((x) => x.name === "jobwatch_webhook_attempts_total")
        .reduce((sum, x) => sum + x.value, 0);
      assert.equal(value(seen, "jobwatch_webhook_attempt_duration_seconds_count"), attempts, "every attempt timed");
      for (const outcome of ["http_4xx", "http_other", "timeout", "connection_error", "address_refused", "shutdown"]) {
        assert.equal(value(seen, "jobwatch_webhook_attempts_total", { outcome }), 0, outcome);
      }
      assert.equal(value(seen, "jobwatch_webhook_deliveries_in_flight"), 0);
    } finally {
      await receiver.close();
    }
  });

  test("the outbox backlog: read from the store at most every 5 s, however often /metrics is scraped", async () => {
    let reads = 0;
    let clock = 1_000_000;
    const backlog = { pending: 3, oldestSince: clock - 90_000 };
    const registry = new Registry();
    const store = {
      deliveryBacklog: async () => {
        reads++;
        return { ...backlog };
      },
    };
    dispatcherMetrics(registry, store, () => clock);
    const first = parse(await registry.metrics());
    assert.equal(value(first, "jobwatch_webhook_outbox_pending"), 3);
    assert.equal(value(first, "jobwatch_webhook_outbox_oldest_pending_seconds"), 90);
    backlog.pending = 0;
    for (let i = 0; i < 5; i++) await registry.metrics();
    assert.equal(reads, 1, "one count for six scrapes");
    clock += 5000;
    assert.equal(value(parse(await registry.metrics()), "jobwatch_webhook_outbox_pending"), 0);
    assert.equal(reads, 2);
  });

  test("promtool check metrics passes on a scrape after calls of every kind (Prometheus's own linter)", async () => {
    await assert.rejects(admin.getJob(UNKNOWN_JOB), JobNotFoundError);
    const job = await admin.worker.createJob({ operationType: "promtool_check", username: "alice" });
    await admin.worker.startJob(job.jobId);
    await admin.worker.completeJob(job.jobId, { ok: true });
    const text = await (await fetch(`http://${service.metricsAddress}/metrics`)).text();
    const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    assert.equal(check.error, undefined, "promtool is installed (.ci/run installs it from Debian's prometheus)");
    assert.equal(check.status, 0, `promtool check metrics:\n${check.stdout}${check.stderr}`);
  });

  test("anything but GET /metrics is 404", async () => {
    const res = await fetch(`http://${service.metricsAddress}/other`);
    assert.equal(res.status, 404);
    await res.text();
  });
});

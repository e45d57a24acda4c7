// Prometheus metrics: the Go gRPC ecosystem's server metrics (go-grpc-prometheus names and labels),
// jobwatch's own (watches, change feed, auth caches, sweeper, database, jobs by status) and process metrics.
// Over 350 lines on purpose: one registry and its metric definitions are read best together (a dashboard
// author finds every name and label here); the rest is the small interceptor and the /metrics listener.

import type { Server as HttpServer } from "node:http";
import { createServer as createHttpServer } from "node:http";
import { performance } from "node:perf_hooks";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { JobStatus } from "../store/job.js";
import { JOB_STATUSES } from "../store/job.js";
import type { OperationFacts, StoreMethod, StoreOf } from "../store/operations.js";
import { decorate, OPERATIONS } from "../store/operations.js";
import type { JobStore } from "../store/store.js";
import { watchQueueCounters } from "../watch/watch-queue.js";
import type { CallHooks, RpcInfo } from "./call-observer.js";
import { sentJob } from "./shared-encoding.js";

/** prom-client default metrics that break Prometheus's naming rules, left out of the exposition. */
const UNLINTED_DEFAULTS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

/** gRPC codes as go-grpc-prometheus spells them in `grpc_code` (codes.Code.String() in Go). */
const GO_CODE_NAMES: Readonly<Record<number, string>> = {
  [GrpcStatus.OK]: "OK",
  [GrpcStatus.CANCELLED]: "Canceled",
  [GrpcStatus.UNKNOWN]: "Unknown",
  [GrpcStatus.INVALID_ARGUMENT]: "InvalidArgument",
  [GrpcStatus.DEADLINE_EXCEEDED]: "DeadlineExceeded",
  [GrpcStatus.NOT_FOUND]: "NotFound",
  [GrpcStatus.ALREADY_EXISTS]: "AlreadyExists",
  [GrpcStatus.PERMISSION_DENIED]: "PermissionDenied",
  [GrpcStatus.RESOURCE_EXHAUSTED]: "ResourceExhausted",
  [GrpcStatus.FAILED_PRECONDITION]: "FailedPrecondition",
  [GrpcStatus.ABORTED]: "Aborted",
  [GrpcStatus.OUT_OF_RANGE]: "OutOfRange",
  [GrpcStatus.UNIMPLEMENTED]: "Unimplemented",
  [GrpcStatus.INTERNAL]: "Internal",
  [GrpcStatus.UNAVAILABLE]: "Unavailable",
  [GrpcStatus.DATA_LOSS]: "DataLoss",
  [GrpcStatus.UNAUTHENTICATED]: "Unauthenticated",
};

/** Counters owned elsewhere that the metrics read when scraped (no cost on the hot path). */
export interface MetricsSources {
  /** Opaque-token cache. */
  tokenCache?: { hits: number; misses: number };
  /** JWT cache and JWKS loads. */
  jwt?: { cacheHits: number; cacheMisses: number; jwksLoads: number } | undefined;
}

/** How often, at most, jobs are counted by status (a GROUP BY over the whole table). */
const JOB_COUNT_EVERY_MS = 15_000;

// Handling-time buckets: go-grpc-prometheus's defaults (prometheus.DefBuckets).
const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface RpcChildren {
  started: Counter.Internal;
  received: Counter.Internal;
  sent: Counter.Internal;
  handling: Histogram.Internal<string>;
  handled: Map<number, Counter.Internal>;
  watch: boolean;
}

/** Every metric of one server process, its call hooks and store wrapper, and the /metrics endpoint. */
export class Metrics {
  readonly registry = new Registry();
  private readonly rpcs = new Map<string, RpcChildren>();
  private readonly started: Counter;
  private readonly handled: Counter;
  private readonly received: Counter;
  private readonly sent: Counter;
  private readonly handling: Histogram;
  private readonly openWatches: Gauge;
  private readonly delivered: Counter;
  private readonly lag: Histogram;
  private readonly pollSeconds: Histogram;
  private readonly dbSeconds: Histogram;
  private readonly dbUp: Gauge;
  private readonly swept: Counter;
  private readonly tokenReloads: Counter;
  private http: HttpServer | undefined;

  constructor(sources: MetricsSources = {}, jobStore?: () => Pick<JobStore, "getStatistics"> | undefined) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // prom-client exports these totals as gauges named `_total`, which Prometheus reserves for counters
    // (`promtool check metrics` fails on them); the per-type gauges beside them (nodejs_active_handles
    // {type} ...) carry the same counts: sum() them for the total.
    for (const name of UNLINTED_DEFAULTS) this.registry.removeSingleMetric(name);
    const grpcLabels = ["grpc_type", "grpc_service", "grpc_method"] as const;
    this.started = new Counter({
      name: "grpc_server_started_total",
      help: "Total number of RPCs started on the server.",
      labelNames: grpcLabels,
      registers,
    });
    this.handled = new Counter({
      name: "grpc_server_handled_total",
      help: "Total number of RPCs completed on the server, regardless of success or failure.",
      labelNames: [...grpcLabels, "grpc_code"],
      registers,
    });
    this.received = new Counter({
      name: "grpc_server_msg_received_total",
      help: "Total number of RPC stream messages received on the server.",
      labelNames: grpcLabels,
      registers,
    });
    this.sent = new Counter({
      name: "grpc_server_msg_sent_total",
      help: "Total number of gRPC stream messages sent by the server.",
      labelNames: grpcLabels,
      registers,
    });
    this.handling = new Histogram({
      name: "grpc_server_handling_seconds",
      help: "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
      labelNames: grpcLabels,
      buckets: DEFAULT_BUCKETS,
      registers,
    });
    this.openWatches = new Gauge({
      name: "jobwatch_watches_open",
      help: "WatchJob and WatchJobs streams open on this process.",
      registers,
    });
    this.delivered = new Counter({
      name: "jobwatch_watch_changes_delivered_total",
      help: "Job changes sent to watchers by this process.",
      registers,
    });
    this.lag = new Histogram({
      name: "jobwatch_watch_delivery_lag_seconds",
      help: "Time from a change's commit (the job's updated_at) to its delivery to a watcher by this process.",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    new Counter({
      name: "jobwatch_watch_progress_coalesced_total",
      help: "Progress-only changes a slow watcher never received because a newer one replaced them.",
      registers,
      collect() {
        this.reset();
        this.inc(watchQueueCounters.coalesced);
      },
    });
    this.pollSeconds = new Histogram({
      name: "jobwatch_change_feed_poll_seconds",
      help: "Duration of one read of the change feed (changes written through other processes).",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.dbSeconds = new Histogram({
      name: "jobwatch_db_query_seconds",
      help: "Duration of database operations, by store operation.",
      labelNames: ["operation"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.dbUp = new Gauge({
      name: "jobwatch_db_up",
      help: "1 when the last database health ping succeeded, 0 when it failed.",
      registers,
    });
    this.swept = new Counter({
      name: "jobwatch_sweeper_jobs_total",
      help: "Jobs moved or removed by the sweeper, by kind: stale (FAILED), cancel_grace (CANCELLED), retention (deleted).",
      labelNames: ["kind"],
      registers,
    });
    for (const { meter } of Object.values<OperationFacts>(OPERATIONS)) {
      if (typeof meter === "object") this.swept.labels(meter.sweep).inc(0);
    }
    this.tokenReloads = new Counter({
      name: "jobwatch_auth_token_reloads_total",
      help: "Reloads of the active API tokens from the database.",
      registers,
    });
    new Counter({
      name: "jobwatch_auth_cache_hits_total",
      help: "Calls authenticated from a cache, by credential kind (token: jobwatch tokens, jwt: verified JWTs).",
      labelNames: ["kind"],
      registers,
      collect() {
        this.reset();
        this.labels("token").inc(sources.tokenCache?.hits ?? 0);
        this.labels("jwt").inc(sources.jwt?.cacheHits ?? 0);
      },
    });
    new Counter({
      name: "jobwatch_auth_cache_misses_total",
      help: "Calls whose credential had to be checked (token: looked up, jwt: signature verified).",
      labelNames: ["kind"],
      registers,
      collect() {
        this.reset();
        this.labels("token").inc(sources.tokenCache?.misses ?? 0);
        this.labels("jwt").inc(sources.jwt?.cacheMisses ?? 0);
      },
    });
    new Counter({
      name: "jobwatch_auth_jwks_loads_total",
      help: "Fetches (or file reads) of the identity provider's JWKS.",
      registers,
      collect() {
        this.reset();
        this.inc(sources.jwt?.jwksLoads ?? 0);
      },
    });
    let counted: { at: number; byStatus: Record<JobStatus, number> } | undefined;
    let counting: Promise<void> | undefined;
    new Gauge({
      name: "jobwatch_jobs",
      help: `Jobs in the database by status (counted at most every ${JOB_COUNT_EVERY_MS / 1000} s).`,
      labelNames: ["status"],
      registers,
      async collect() {
        const store = jobStore?.();
        if (store !== undefined && (counted === undefined || Date.now() - counted.at >= JOB_COUNT_EVERY_MS)) {
          // Scrapes that arrive together share one count; a failed count keeps the previous figures.
          counting ??= store
            .getStatistics(undefined, 10 * 365 * 86_400_000)
            .then((stats) => {
              counted = { at: Date.now(), byStatus: stats.byStatus };
            })
            .catch(() => undefined)
            .finally(() => {
              counting = undefined;
            });
          await counting;
        }
        for (const status of JOB_STATUSES) this.labels(status).set(counted?.byStatus[status] ?? 0);
      },
    });
  }

  private children(rpc: RpcInfo): RpcChildren {
    let children = this.rpcs.get(rpc.path);
    if (children === undefined) {
      const labels = [rpc.type, rpc.service, rpc.method] as const;
      children = {
        started: this.started.labels(...labels),
        received: this.received.labels(...labels),
        sent: this.sent.labels(...labels),
        handling: this.handling.labels(...labels),
        handled: new Map(),
        watch: rpc.service === "jobwatch.v1.JobService" && rpc.type === "server_stream",
      };
      this.rpcs.set(rpc.path, children);
    }
    return children;
  }

  /** Call hooks: per-rpc label children are bound once, so a call costs a few additions. */
  hooks(): CallHooks {
    return {
      started: (rpc) => {
        const c = this.children(rpc);
        c.started.inc();
        if (c.watch) this.openWatches.inc();
      },
      received: (rpc) => this.children(rpc).received.inc(),
      sent: (rpc, message, count) => {
        const c = this.children(rpc);
        c.sent.inc();
        if (!c.watch) return;
        // WatchJob's changes are pre-serialized Buffers (shared-encoding.ts): their job is looked up.
        const job = sentJob(message);
        if (job === undefined) return; // a bookmark
        this.delivered.inc();
        // The first message is the job as it was when the watch opened, not a change being delivered.
        if (count > 1 && job.updatedAt !== undefined) this.lag.observe((Date.now() - job.updatedAt.getTime()) / 1000);
      },
      finished: (call) => {
        const c = this.children(call.rpc);
        let handled = c.handled.get(call.code);
        if (handled === undefined) {
          const code = GO_CODE_NAMES[call.code] ?? String(call.code);
          handled = this.handled.labels(call.rpc.type, call.rpc.service, call.rpc.method, code);
          c.handled.set(call.code, handled);
        }
        handled.inc();
        c.handling.observe(call.durationMs / 1000);
        if (c.watch) this.openWatches.dec();
      },
    };
  }

  /**
   * The store, with every operation timed (jobwatch_db_query_seconds by its `metric` in OPERATIONS) and
   * what its `meter` says counted: health pings set jobwatch_db_up, feed reads are timed as polls, token
   * reloads and sweeper moves counted.
   */
  instrumentStore<S extends Partial<JobStore>>(store: S): StoreOf<S> {
    return decorate(store, (_name, facts, method) => this.timed(facts, method));
  }

  private timed(facts: OperationFacts, method: StoreMethod): StoreMethod {
    const histogram = this.dbSeconds.labels(facts.metric);
    const { meter } = facts;
    const poll = meter === "feed_poll" ? this.pollSeconds : undefined;
    const swept = typeof meter === "object" ? this.swept.labels(meter.sweep) : undefined;
    const isPing = meter === "db_up";
    const isTokenLoad = meter === "token_reload";
    return (...args) => {
      const began = performance.now();
      return method(...args).then(
        (value: unknown) => {
          const seconds = (performance.now() - began) / 1000;
          histogram.observe(seconds);
          poll?.observe(seconds);
          if (isPing) this.dbUp.set(1);
          if (isTokenLoad) this.tokenReloads.inc();
          if (swept !== undefined)
            swept.inc(Array.isArray(value) ? value.length : typeof value === "number" ? value : 0);
          return value;
        },
        (error: unknown) => {
          histogram.observe((performance.now() - began) / 1000);
          if (isPing) this.dbUp.set(0);
          throw error;
        },
      );
    };
  }

  /** Serves GET /metrics on `address` ("host:port"; port 0 picks one); resolves with the real address. */
  async listen(address: string): Promise<string> {
    const match = /^(.*):(\d+)$/.exec(address);
    if (!match) throw new Error(`cannot serve metrics on ${address}: not host:port`);
    const host = match[1]!.replace(/^\[(.*)\]$/, "$1");
    const server = createHttpServer((req, res) => {
      if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found: metrics are at /metrics\n");
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": this.registry.contentType }).end(text),
        (error: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`${String(error)}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error) => reject(new Error(`cannot serve metrics on ${address}: ${error.message}`)));
      server.listen(Number(match[2]), host, () => resolve());
    });
    this.http = server;
    const { port } = server.address() as { port: number };
    return `${match[1]}:${port}`;
  }

  /** Stops the /metrics endpoint. */
  async close(): Promise<void> {
    const server = this.http;
    this.http = undefined;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
